"""Default architecture settings, importable without torch (CLI, GUI, configs)."""

# Default M2: ImageNet EfficientNet-Lite0 in timm's TF-compatible form.
DEFAULT_ARCH = "tf_efficientnet_lite0"
# Its number of transferable stages (see models.stages).
DEFAULT_M2_DEPTH = 5
# Decoder channels per level, deepest first, the input resolution last.
DEFAULT_DECODER_CHANNELS = (64, 48, 32, 24, 16)
# At most this many new layers beyond l (extra blocks at full resolution).
MAX_EXTRA_BLOCKS = 2
