using ILGPU;
using Nabla.Gpu.Kernels;
using Nabla.Kernels;
using K = Nabla.Gpu.Kernels;

namespace Nabla.Gpu;

// Recurrent cells, pooling, depthwise convolution, col2im and batch norm: one naive version each (one thread per
// output element; scatters with atomics). Not needed by GPT-2 or the MLP; correct first, fast later.
public sealed unsafe partial class GpuBackend
{
    public void LstmCell(float* gates, float* cPrev, float* c, float* h, int batch, int hidden)
    {
        long n = (long)batch * hidden;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(Recurrent.Lstm)(Count(n, nameof(LstmCell)), F(gates), F(cPrev), F(c), F(h), hidden);
    }

    public void LstmCellBackward(float* gates, float* cPrev, float* c, float* dh, float* dc, float* dGates, float* dcPrev, int batch, int hidden)
    {
        long n = (long)batch * hidden;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(
            Recurrent.LstmBackward)(Count(n, nameof(LstmCellBackward)), F(gates), F(cPrev), F(c), F(dh), F(dc), F(dGates), F(dcPrev), hidden);
    }

    public void GruCell(float* inputGates, float* hiddenGates, float* hPrev, float* h, int batch, int hidden)
    {
        long n = (long)batch * hidden;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(Recurrent.Gru)(
            Count(n, nameof(GruCell)), F(inputGates), F(hiddenGates), F(hPrev), F(h), hidden);
    }

    public void GruCellBackward(float* gates, float* hiddenGates, float* hPrev, float* dh, float* dInputGates, float* dHiddenGates, float* dhPrev,
        int batch, int hidden)
    {
        long n = (long)batch * hidden;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(
            Recurrent.GruBackward)(Count(n, nameof(GruCellBackward)), F(gates), F(hiddenGates), F(hPrev), F(dh), F(dInputGates), F(dHiddenGates), F(dhPrev), hidden);
    }

    public void Col2Im(in Conv2dGeometry g, float* col, float* dx)
    {
        Fill(dx, 0, (long)g.Planes * g.Height * g.Width);
        long entries = (long)g.Planes * g.KernelH * g.KernelW * g.OutHeight * g.OutWidth;
        if (entries == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, Conv2dGeometry>(Pooling.Col2Im)(Count(entries, nameof(Col2Im)), F(col), F(dx), g);
    }

    public void DirectConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y)
    {
        long n = (long)g.Batch * g.OutChannels * g.OutHeight * g.OutWidth;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dGeometry, int>(DirectConvolution.Forward)(
            Count(n, nameof(DirectConv2d)), F(x), F(w), F(bias), F(y), g, bias == null ? 0 : 1);
    }

    public void DirectConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx)
    {
        long n = (long)g.Batch * g.Channels * g.Height * g.Width;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dGeometry>(DirectConvolution.BackwardInput)(
            Count(n, nameof(DirectConv2dBackwardInput)), F(dy), F(w), F(dx), g);
    }

    public void DirectConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw)
    {
        long n = (long)g.OutChannels * g.Channels * g.KernelH * g.KernelW;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dGeometry>(DirectConvolution.BackwardWeight)(
            Count(n, nameof(DirectConv2dBackwardWeight)), F(dy), F(x), F(dw), g);
    }

    public void DepthwiseConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y)
    {
        long n = (long)g.Batch * g.OutChannels * g.OutHeight * g.OutWidth;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dGeometry, int>(Pooling.Depthwise)(
            Count(n, nameof(DepthwiseConv2d)), F(x), F(w), F(bias), F(y), g, bias == null ? 0 : 1);
    }

    public void DepthwiseConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx)
    {
        Fill(dx, 0, (long)g.Planes * g.Height * g.Width);
        long n = (long)g.Batch * g.OutChannels * g.OutHeight * g.OutWidth;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dGeometry>(Pooling.DepthwiseBackwardInput)(
            Count(n, nameof(DepthwiseConv2dBackwardInput)), F(dy), F(w), F(dx), g);
    }

    public void DepthwiseConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw)
    {
        long n = (long)g.OutChannels * g.KernelH * g.KernelW;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv2dGeometry>(Pooling.DepthwiseBackwardWeight)(
            Count(n, nameof(DepthwiseConv2dBackwardWeight)), F(dy), F(x), F(dw), g);
    }

    public void MaxPool2d(in Conv2dGeometry g, float* x, float* y, int* argmax)
    {
        long n = (long)g.Planes * g.OutHeight * g.OutWidth;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<int>, Conv2dGeometry>(Pooling.MaxPool)(Count(n, nameof(MaxPool2d)), F(x), F(y), I(argmax), g);
    }

    public void MaxPool2dBackward(in Conv2dGeometry g, float* dy, int* argmax, float* dx)
    {
        Fill(dx, 0, (long)g.Planes * g.Height * g.Width);
        long n = (long)g.Planes * g.OutHeight * g.OutWidth;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int>(Pooling.MaxPoolBackward)(
            Count(n, nameof(MaxPool2dBackward)), F(dy), I(argmax), F(dx), g.OutHeight * g.OutWidth, g.Height * g.Width);
    }

    public void AvgPool2d(in Conv2dGeometry g, bool countIncludePad, float* x, float* y)
    {
        long n = (long)g.Planes * g.OutHeight * g.OutWidth;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, Conv2dGeometry, int>(Pooling.AvgPool)(Count(n, nameof(AvgPool2d)), F(x), F(y), g, countIncludePad ? 1 : 0);
    }

    public void AvgPool2dBackward(in Conv2dGeometry g, bool countIncludePad, float* dy, float* dx)
    {
        Fill(dx, 0, (long)g.Planes * g.Height * g.Width);
        long n = (long)g.Planes * g.OutHeight * g.OutWidth;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, Conv2dGeometry, int>(Pooling.AvgPoolBackward)(
            Count(n, nameof(AvgPool2dBackward)), F(dy), F(dx), g, countIncludePad ? 1 : 0);
    }

    public void AdaptiveAvgPool2d(int planes, int height, int width, int outHeight, int outWidth, float* x, float* y)
    {
        long n = (long)planes * outHeight * outWidth;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, int, int, int, int>(Pooling.AdaptiveAvgPool)(
            Count(n, nameof(AdaptiveAvgPool2d)), F(x), F(y), height, width, outHeight, outWidth);
    }

    public void AdaptiveAvgPool2dBackward(int planes, int height, int width, int outHeight, int outWidth, float* dy, float* dx)
    {
        Fill(dx, 0, (long)planes * height * width);
        long n = (long)planes * outHeight * outWidth;
        if (n == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, int, int, int, int>(Pooling.AdaptiveAvgPoolBackward)(
            Count(n, nameof(AdaptiveAvgPool2dBackward)), F(dy), F(dx), height, width, outHeight, outWidth);
    }

    public void BatchNormStatistics(float* x, float* mean, float* variance, int batch, int channels, int spatial)
    {
        if (channels == 0) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(K.BatchNorm.Statistics)(
            channels, F(x), F(mean), F(variance), batch, channels, spatial);
    }

    public void BatchNorm(float* x, float* mean, float* rstd, float* w, float* b, float* residual, bool relu, float* y, int batch, int channels, int spatial)
    {
        long n = (long)batch * channels * spatial;
        if (n == 0) return;
        int flags = (w == null ? 0 : K.BatchNorm.HasWeight) | (b == null ? 0 : K.BatchNorm.HasBias) | (residual == null ? 0 : K.BatchNorm.HasResidual) |
            (relu ? K.BatchNorm.Relu : 0);
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(K.BatchNorm.Normalize)(
            Count(n, nameof(BatchNorm)), F(x), F(mean), F(rstd), F(w), F(b), F(residual), F(y), channels, spatial, flags);
    }

    public void BatchNormBackward(float* dy, float* x, float* mean, float* rstd, float* w, float* reluOutput, float* dx, float* dResidual, float* dw, float* db,
        int batch, int channels, int spatial, bool batchStatistics)
    {
        if (channels == 0) return;
        using var sums = Scratch(2L * channels);
        int flags = (w == null ? 0 : K.BatchNorm.HasWeight) | (reluOutput == null ? 0 : K.BatchNorm.Relu) | (dw == null ? 0 : K.BatchNorm.HasDw) |
            (db == null ? 0 : K.BatchNorm.HasDb) | (batchStatistics ? K.BatchNorm.BatchStatistics : 0);
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(
            K.BatchNorm.GradientSums)(channels, F(dy), F(x), F(mean), F(rstd), F(reluOutput), sums.View, F(dw), F(db), batch, channels, spatial, flags);
        long n = (long)batch * channels * spatial;
        if (n == 0) return;
        if (dResidual != null)
            Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(K.BatchNorm.MaskedGradient)(Count(n, nameof(BatchNormBackward)), F(dy), F(reluOutput), F(dResidual), flags);
        if (dx == null) return;
        Auto<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(
            K.BatchNorm.InputGradient)(Count(n, nameof(BatchNormBackward)), F(dy), F(x), F(mean), F(rstd), F(w), F(reluOutput), sums.View, F(dx), batch, channels, spatial, flags);
    }
}
