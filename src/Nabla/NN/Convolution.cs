namespace Nabla.NN;

/// <summary>2-D convolution layer over (N, C, H, W) input. Weight (out, in/groups, kh, kw) and bias (out) are
/// initialised as in PyTorch: U(-1/√fan_in, 1/√fan_in) with fan_in = in/groups·kh·kw.</summary>
public class Conv2d : Module
{
    public int InChannels { get; }
    public int OutChannels { get; }
    public Size2 KernelSize { get; }
    public Size2 Stride { get; }
    public Size2 Padding { get; }
    public Size2 Dilation { get; }
    public int Groups { get; }
    public Tensor Weight { get; }
    public Tensor? Bias { get; }

    public Conv2d(int inChannels, int outChannels, Size2 kernelSize, Size2? stride = null, Size2? padding = null,
        Size2? dilation = null, int groups = 1, bool bias = true, Generator? generator = null)
    {
        if (inChannels <= 0 || outChannels <= 0 || groups <= 0 || inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException($"Conv2d({inChannels}, {outChannels}, groups={groups}): channel counts must be positive and divisible by groups.");
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelSize = kernelSize;
        Stride = stride ?? 1;
        Padding = padding ?? 0;
        Dilation = dilation ?? 1;
        Groups = groups;
        Weight = RegisterParameter("weight", Tensor.Zeros(outChannels, inChannels / groups, kernelSize.H, kernelSize.W));
        // kaiming_uniform(a=√5), as in PyTorch, reduces to U(-1/√fan_in, 1/√fan_in)
        float bound = 1f / MathF.Sqrt(inChannels / groups * kernelSize.H * kernelSize.W);
        Init.Uniform(Weight, -bound, bound, generator);
        if (bias) Bias = Init.Uniform(RegisterParameter("bias", Tensor.Zeros(outChannels)), -bound, bound, generator);
    }

    public override Tensor Forward(Tensor input) => F.Conv2d(input, Weight, Bias, Stride, Padding, Dilation, Groups);

    protected override string Describe() =>
        $"{InChannels}, {OutChannels}, kernel_size={KernelSize}, stride={Stride}, padding={Padding}" +
        (Dilation != new Size2(1, 1) ? $", dilation={Dilation}" : "") + (Groups != 1 ? $", groups={Groups}" : "") + (Bias == null ? ", bias=False" : "");
}

/// <summary>Max pooling over kernel-sized windows (stride defaults to the kernel size).</summary>
public sealed class MaxPool2d(Size2 kernelSize, Size2? stride = null, Size2? padding = null, Size2? dilation = null) : Module
{
    public Size2 KernelSize { get; } = kernelSize;
    public Size2 Stride { get; } = stride ?? kernelSize;
    public Size2 Padding { get; } = padding ?? 0;
    public Size2 Dilation { get; } = dilation ?? 1;

    public override Tensor Forward(Tensor input) => F.MaxPool2d(input, KernelSize, Stride, Padding, Dilation);
    protected override string Describe() => $"kernel_size={KernelSize}, stride={Stride}, padding={Padding}, dilation={Dilation}";
}

/// <summary>Average pooling over kernel-sized windows (stride defaults to the kernel size).</summary>
public sealed class AvgPool2d(Size2 kernelSize, Size2? stride = null, Size2? padding = null, bool countIncludePad = true) : Module
{
    public Size2 KernelSize { get; } = kernelSize;
    public Size2 Stride { get; } = stride ?? kernelSize;
    public Size2 Padding { get; } = padding ?? 0;
    public bool CountIncludePad { get; } = countIncludePad;

    public override Tensor Forward(Tensor input) => F.AvgPool2d(input, KernelSize, Stride, Padding, CountIncludePad);
    protected override string Describe() => $"kernel_size={KernelSize}, stride={Stride}, padding={Padding}, count_include_pad={CountIncludePad}";
}

/// <summary>Average pooling to a fixed output size, whatever the input size ((1, 1): global average pooling).</summary>
public sealed class AdaptiveAvgPool2d(Size2 outputSize) : Module
{
    public Size2 OutputSize { get; } = outputSize;

    public override Tensor Forward(Tensor input) => F.AdaptiveAvgPool2d(input, OutputSize);
    protected override string Describe() => $"output_size={OutputSize}";
}
