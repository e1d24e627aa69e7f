using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

public static unsafe partial class F
{
    /// <summary>Max pooling of x (N, C, H, W) over kernel-sized windows (stride defaults to the kernel size;
    /// padding counts as -∞, floor mode). The backward routes each output's gradient to the input that won,
    /// whose index the forward saves.</summary>
    public static Tensor MaxPool2d(Tensor x, Size2 kernel, Size2? stride = null, Size2? padding = null, Size2? dilation = null)
    {
        var g = PoolGeometry("MaxPool2d", x, kernel, stride ?? kernel, padding ?? 0, dilation ?? 1);
        var xc = x.Contiguous();
        var y = Tensor.Empty([g.Batch, g.Channels, g.OutHeight, g.OutWidth], DType.Float32, x.Device);
        var argmax = Tensor.Empty([g.Batch, g.Channels, g.OutHeight, g.OutWidth], DType.Int32, x.Device);
        if (y.Count > 0) Tensor.KernelsFor("MaxPool2d", xc).MaxPool2d(g, xc.Data, y.Data, argmax.IntData);
        GC.KeepAlive(xc);
        if (GradMode.Needed(x))
        {
            y.Record("MaxPool2d", [x], dy =>
            {
                var dyc = dy.Contiguous();
                var dx = Tensor.Empty(x.Shape.ToArray(), DType.Float32, x.Device);
                if (dx.Count > 0) Tensor.KernelsFor("MaxPool2d backward", dyc).MaxPool2dBackward(g, dyc.Data, argmax.IntData, dx.Data);
                GC.KeepAlive(dyc);
                GC.KeepAlive(argmax);
                return [dx];
            }, saved: [argmax]);
        }
        return y;
    }

    /// <summary>Average pooling of x (N, C, H, W) (stride defaults to the kernel size; zero padding, floor mode).
    /// With <paramref name="countIncludePad"/> (PyTorch's default) every window divides by kh·kw, padding included;
    /// otherwise by the number of its positions inside the input.</summary>
    public static Tensor AvgPool2d(Tensor x, Size2 kernel, Size2? stride = null, Size2? padding = null, bool countIncludePad = true)
    {
        var g = PoolGeometry("AvgPool2d", x, kernel, stride ?? kernel, padding ?? 0, 1);
        var xc = x.Contiguous();
        var y = Tensor.Empty([g.Batch, g.Channels, g.OutHeight, g.OutWidth], DType.Float32, x.Device);
        if (y.Count > 0) Tensor.KernelsFor("AvgPool2d", xc).AvgPool2d(g, countIncludePad, xc.Data, y.Data);
        GC.KeepAlive(xc);
        if (GradMode.Needed(x))
        {
            y.Record("AvgPool2d", [x], dy =>
            {
                var dyc = dy.Contiguous();
                var dx = Tensor.Empty(x.Shape.ToArray(), DType.Float32, x.Device);
                if (dx.Count > 0) Tensor.KernelsFor("AvgPool2d backward", dyc).AvgPool2dBackward(g, countIncludePad, dyc.Data, dx.Data);
                GC.KeepAlive(dyc);
                return [dx];
            });
        }
        return y;
    }

    /// <summary>Average pooling of x (N, C, H, W) to a fixed output size (N, C, outH, outW); output row o averages
    /// input rows [⌊o·H/outH⌋, ⌈(o+1)·H/outH⌉), as in PyTorch. (1, 1) is the global average pooling of ResNet's head.</summary>
    public static Tensor AdaptiveAvgPool2d(Tensor x, Size2 outputSize)
    {
        x.RequireFloat("AdaptiveAvgPool2d");
        if (x.Rank != 4) throw new ArgumentException($"AdaptiveAvgPool2d: input must be (batch, channels, height, width), got {x.ShapeString}.");
        int N = x.Size(0), C = x.Size(1), H = x.Size(2), W = x.Size(3), OH = outputSize.H, OW = outputSize.W;
        if (OH < 1 || OW < 1) throw new ArgumentException($"AdaptiveAvgPool2d: output size {outputSize} must be positive.");
        if (H == 0 || W == 0) throw new ArgumentException($"AdaptiveAvgPool2d: input {x.ShapeString} has an empty spatial dimension.");
        var xc = x.Contiguous();
        var y = Tensor.Empty([N, C, OH, OW], DType.Float32, x.Device);
        if (y.Count > 0) Tensor.KernelsFor("AdaptiveAvgPool2d", xc).AdaptiveAvgPool2d(N * C, H, W, OH, OW, xc.Data, y.Data);
        GC.KeepAlive(xc);
        if (GradMode.Needed(x))
        {
            y.Record("AdaptiveAvgPool2d", [x], dy =>
            {
                var dyc = dy.Contiguous();
                var dx = Tensor.Empty(x.Shape.ToArray(), DType.Float32, x.Device);
                if (dx.Count > 0) Tensor.KernelsFor("AdaptiveAvgPool2d backward", dyc).AdaptiveAvgPool2dBackward(N * C, H, W, OH, OW, dyc.Data, dx.Data);
                GC.KeepAlive(dyc);
                return [dx];
            });
        }
        return y;
    }

    private static Conv2dGeometry PoolGeometry(string op, Tensor x, Size2 kernel, Size2 stride, Size2 padding, Size2 dilation)
    {
        x.RequireFloat(op);
        if (x.Rank != 4) throw new ArgumentException($"{op}: input must be (batch, channels, height, width), got {x.ShapeString}.");
        if (kernel.H < 1 || kernel.W < 1 || stride.H < 1 || stride.W < 1 || dilation.H < 1 || dilation.W < 1)
            throw new ArgumentException($"{op}: kernel {kernel}, stride {stride} and dilation {dilation} must be positive.");
        // PyTorch's rule: padding beyond half the window would make windows that see only padding.
        if (padding.H < 0 || padding.W < 0 || padding.H > kernel.H / 2 || padding.W > kernel.W / 2)
            throw new ArgumentException($"{op}: padding {padding} must be between 0 and half the kernel size {kernel}.");
        var g = Conv2dGeometry.Pooling(x.Size(0), x.Size(1), x.Size(2), x.Size(3), kernel.H, kernel.W,
            stride.H, stride.W, padding.H, padding.W, dilation.H, dilation.W);
        if (g.OutHeight < 1 || g.OutWidth < 1)
            throw new ArgumentException($"{op}: the {kernel} window does not fit in input {x.ShapeString} padded by {padding}.");
        return g;
    }
}
