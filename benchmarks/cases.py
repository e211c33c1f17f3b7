"""The benchmark suite's shapes: one definition for the script, the report and the pytest suite."""
from dataclasses import dataclass


@dataclass(frozen=True)
class ConvCase:
    name: str
    input_shape: tuple  # N, H, W, Cin (NHWC)
    kernel: tuple       # kh, kw, Cout
    stride: int
    padding: str

    @property
    def filter_shape(self):
        kh, kw, cout = self.kernel
        return (kh, kw, self.input_shape[3], cout)

    def output_shape(self):
        n, h, w, _ = self.input_shape
        kh, kw, cout = self.kernel
        s = self.stride
        if self.padding == "SAME":
            return (n, -(-h // s), -(-w // s), cout)
        return (n, (h - kh) // s + 1, (w - kw) // s + 1, cout)

    def flops(self):
        """Multiply-adds x 2 of the forward convolution: 2 * N * OH * OW * Cout * kh * kw * Cin."""
        n, oh, ow, cout = self.output_shape()
        kh, kw, _ = self.kernel
        return 2 * n * oh * ow * cout * kh * kw * self.input_shape[3]


@dataclass(frozen=True)
class PoolCase:
    name: str
    input_shape: tuple  # N, H, W, C
    ksize: int
    stride: int
    padding: str = "VALID"


CONV_CASES = [
    ConvCase("malaria-conv1", (100, 100, 100, 3), (3, 3, 32), 1, "SAME"),
    ConvCase("malaria-conv2", (100, 50, 50, 32), (3, 3, 64), 1, "VALID"),
    ConvCase("lenet-conv1", (256, 32, 32, 1), (3, 3, 6), 1, "VALID"),
    ConvCase("lenet-conv2", (256, 15, 15, 6), (3, 3, 16), 1, "VALID"),
    ConvCase("newyork-1ch", (1, 1024, 1536, 1), (3, 3, 1), 1, "SAME"),
    ConvCase("resnet-3x3", (32, 56, 56, 64), (3, 3, 64), 1, "SAME"),
    ConvCase("resnet-s2", (32, 56, 56, 64), (3, 3, 128), 2, "SAME"),
    ConvCase("stem-7x7s2", (16, 224, 224, 3), (7, 7, 64), 2, "SAME"),
]

POOL_CASES = [
    PoolCase("malaria-pool1", (100, 100, 100, 32), 2, 2),
    PoolCase("malaria-pool2", (100, 48, 48, 64), 2, 2),
]
