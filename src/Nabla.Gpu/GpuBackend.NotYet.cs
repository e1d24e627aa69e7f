using Nabla.Kernels;

namespace Nabla.Gpu;

// The Winograd transforms have no GPU kernel yet: each throws naming the method and the device, so a model that
// reaches one fails with a clear line instead of a wrong result (on the GPU a 3×3 convolution should take the
// im2col + GEMM route).
public sealed unsafe partial class GpuBackend
{
    private NotSupportedException NotYet(string method) =>
        new($"{method} has no GPU kernel yet (device {_runtime.Name}); run this model on the CPU.");

    public void WinogradInput(in Conv2dGeometry g, float* x, float* v) => throw NotYet(nameof(WinogradInput));
    public void WinogradOutput(in Conv2dGeometry g, float* m, float* bias, float* y) => throw NotYet(nameof(WinogradOutput));
    public void WinogradOutputAdjoint(in Conv2dGeometry g, float* dy, float* dm) => throw NotYet(nameof(WinogradOutputAdjoint));
    public void WinogradKernels(in Conv2dGeometry g, float* w, float* u, bool inputGradient) => throw NotYet(nameof(WinogradKernels));
    public void WinogradKernelGradient(in Conv2dGeometry g, float* du, float* dw) => throw NotYet(nameof(WinogradKernelGradient));
}
