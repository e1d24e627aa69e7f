using ILGPU;
using Nabla.Gpu.Kernels;
using Nabla.Kernels;

namespace Nabla.Gpu;

// The Winograd F(2×2, 3×3) transforms: one naive version each (see Kernels/WinogradTransforms.cs).
public sealed unsafe partial class GpuBackend
{
    public void WinogradInput(in Conv2dGeometry g, float* x, float* v)
    {
        long n = (long)g.Planes * g.TileRows * g.TileCols;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, Conv2dGeometry, long>(WinogradTransforms.Input)(
            Count(n, nameof(WinogradInput)), F(x), F(v), g, Winograd.SliceStride(g.Channels, g.Tiles));
    }

    public void WinogradOutput(in Conv2dGeometry g, float* m, float* bias, float* y)
    {
        long n = (long)g.Batch * g.OutChannels * g.TileRows * g.TileCols;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dGeometry, long, int>(WinogradTransforms.Output)(
            Count(n, nameof(WinogradOutput)), F(m), F(bias), F(y), g, Winograd.SliceStride(g.OutChannels, g.Tiles), bias == null ? 0 : 1);
    }

    public void WinogradOutputAdjoint(in Conv2dGeometry g, float* dy, float* dm)
    {
        long n = (long)g.Batch * g.OutChannels * g.TileRows * g.TileCols;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, Conv2dGeometry, long>(WinogradTransforms.OutputAdjoint)(
            Count(n, nameof(WinogradOutputAdjoint)), F(dy), F(dm), g, Winograd.SliceStride(g.OutChannels, g.Tiles));
    }

    public void WinogradKernels(in Conv2dGeometry g, float* w, float* u, bool inputGradient)
    {
        long pairs = (long)g.OutChannels * g.Channels;
        if (pairs == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, int, int, int>(WinogradTransforms.Kernels)(
            Count(pairs, nameof(WinogradKernels)), F(w), F(u), g.OutChannels, g.Channels, inputGradient ? 1 : 0);
    }

    public void WinogradKernelGradient(in Conv2dGeometry g, float* du, float* dw)
    {
        long pairs = (long)g.OutChannels * g.Channels;
        if (pairs == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, int>(WinogradTransforms.KernelGradient)(
            Count(pairs, nameof(WinogradKernelGradient)), F(du), F(dw), (int)pairs);
    }
}
