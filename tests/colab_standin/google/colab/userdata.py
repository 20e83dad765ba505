"""`userdata.get(name)`: Colab secrets, here from the JSON object in COLAB_SIM_SECRETS."""

import json
import os


class SecretNotFoundError(Exception):
    pass


def get(key: str) -> str:
    secrets = json.loads(os.environ.get("COLAB_SIM_SECRETS", "{}"))
    if key not in secrets:
        raise SecretNotFoundError(f"Secret {key} does not exist.")
    return secrets[key]
