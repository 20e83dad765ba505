"""Raw files to a dataset on disk: the sources (Kaggle, Drive, a local folder, the phantom), one file
to a head image (`scans`), files by class folder (`class_folders`), the dataset made (`prepare`),
stored and chosen (`storage`), streamed (`streaming`); `images` holds the pixel range, labels and
PNG files everything else shares."""
