"""What every part needs and nothing of the GAN: files written whole, TensorFlow's log lines kept off
the terminal, the CPU's facts, the Colab workspace on Drive, progress bars. No TensorFlow here."""
