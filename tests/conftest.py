import os

# wandb is never touched unless a test asks for it (and then offline).
os.environ.setdefault("WANDB_MODE", "disabled")
