using Nabla.Kernels;

namespace Nabla.Gpu;

// The kernels not written for the GPU yet (recurrent cells, convolution helpers, pooling, batch norm): each throws
// naming the method and the device, so a model that needs one fails with a clear line instead of a wrong result.
public sealed unsafe partial class GpuBackend
{
    private NotSupportedException NotYet(string method) =>
        new($"{method} has no GPU kernel yet (device {_runtime.Name}); run this model on the CPU.");

    public void LstmCell(float* gates, float* cPrev, float* c, float* h, int batch, int hidden) => throw NotYet(nameof(LstmCell));
    public void LstmCellBackward(float* gates, float* cPrev, float* c, float* dh, float* dc, float* dGates, float* dcPrev, int batch, int hidden) =>
        throw NotYet(nameof(LstmCellBackward));
    public void GruCell(float* inputGates, float* hiddenGates, float* hPrev, float* h, int batch, int hidden) => throw NotYet(nameof(GruCell));
    public void GruCellBackward(float* gates, float* hiddenGates, float* hPrev, float* dh, float* dInputGates, float* dHiddenGates, float* dhPrev,
        int batch, int hidden) => throw NotYet(nameof(GruCellBackward));
    public void Col2Im(in Conv2dGeometry g, float* col, float* dx) => throw NotYet(nameof(Col2Im));
    public void WinogradInput(in Conv2dGeometry g, float* x, float* v) => throw NotYet(nameof(WinogradInput));
    public void WinogradOutput(in Conv2dGeometry g, float* m, float* bias, float* y) => throw NotYet(nameof(WinogradOutput));
    public void WinogradOutputAdjoint(in Conv2dGeometry g, float* dy, float* dm) => throw NotYet(nameof(WinogradOutputAdjoint));
    public void WinogradKernels(in Conv2dGeometry g, float* w, float* u, bool inputGradient) => throw NotYet(nameof(WinogradKernels));
    public void WinogradKernelGradient(in Conv2dGeometry g, float* du, float* dw) => throw NotYet(nameof(WinogradKernelGradient));
    public void DepthwiseConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y) => throw NotYet(nameof(DepthwiseConv2d));
    public void DepthwiseConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx) => throw NotYet(nameof(DepthwiseConv2dBackwardInput));
    public void DepthwiseConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw) => throw NotYet(nameof(DepthwiseConv2dBackwardWeight));
    public void MaxPool2d(in Conv2dGeometry g, float* x, float* y, int* argmax) => throw NotYet(nameof(MaxPool2d));
    public void MaxPool2dBackward(in Conv2dGeometry g, float* dy, int* argmax, float* dx) => throw NotYet(nameof(MaxPool2dBackward));
    public void AvgPool2d(in Conv2dGeometry g, bool countIncludePad, float* x, float* y) => throw NotYet(nameof(AvgPool2d));
    public void AvgPool2dBackward(in Conv2dGeometry g, bool countIncludePad, float* dy, float* dx) => throw NotYet(nameof(AvgPool2dBackward));
    public void AdaptiveAvgPool2d(int planes, int height, int width, int outHeight, int outWidth, float* x, float* y) =>
        throw NotYet(nameof(AdaptiveAvgPool2d));
    public void AdaptiveAvgPool2dBackward(int planes, int height, int width, int outHeight, int outWidth, float* dy, float* dx) =>
        throw NotYet(nameof(AdaptiveAvgPool2dBackward));
    public void BatchNormStatistics(float* x, float* mean, float* variance, int batch, int channels, int spatial) =>
        throw NotYet(nameof(BatchNormStatistics));
    public void BatchNorm(float* x, float* mean, float* rstd, float* w, float* b, float* y, int batch, int channels, int spatial) =>
        throw NotYet(nameof(BatchNorm));
    public void BatchNormBackward(float* dy, float* x, float* mean, float* rstd, float* w, float* dx, float* dw, float* db,
        int batch, int channels, int spatial, bool batchStatistics) => throw NotYet(nameof(BatchNormBackward));
}
