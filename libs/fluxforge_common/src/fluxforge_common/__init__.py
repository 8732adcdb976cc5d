"""FluxForge's shared core; importing it decides whether the kernel runs compiled (`kernel.choose`)."""

from fluxforge_common.kernel import choose

choose()
