"""The apps run TensorFlow with oneDNN's kernels on every x86 CPU, not only on the newest.

TensorFlow turns its oneDNN kernels on by default only on CPUs with extensions
such as AVX512-VNNI, AVX512-BF16 or AMX; elsewhere (an AVX2 AMD EPYC, say) it
runs Eigen's. On such a CPU, oneDNN made a ResNet-50 fine-tuning step 1.3-2.0x
faster (the larger gain at the smaller images) and an EfficientNet-Lite0 step
1.2-1.3x faster (BUILD_NOTES.md, "The machine is now an AVX2 AMD EPYC").
`use_onednn_kernels()` sets `TF_ENABLE_ONEDNN_OPTS=1` unless the user set it;
TensorFlow reads it once, when it is imported, so it must run before. Code of
one's own (`model.fit`) gets the same by starting Python with
`TF_ENABLE_ONEDNN_OPTS=1` in its environment.

    from tensorflow_kernels import use_onednn_kernels
    use_onednn_kernels()
"""

import os
import platform


def use_onednn_kernels():
    """Asks TensorFlow for its oneDNN kernels on an x86 CPU; True if it was set here.

    False, with nothing changed, on other CPUs (not measured) or where
    `TF_ENABLE_ONEDNN_OPTS` is already in the environment (the user's choice).
    """
    if "TF_ENABLE_ONEDNN_OPTS" in os.environ or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
    return True
