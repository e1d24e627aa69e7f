using System.Text.Json;
using Nabla.IO;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Kernels.Reference;
using Nabla.NN;

namespace Nabla.Tests.Ops;

/// <summary>
/// Convolution, pooling and batch norm against PyTorch 1.13 (tests/reference/make_conv_fixtures.py): outputs and
/// the gradients of input, weight and bias for a random upstream gradient, on the optimised and the reference
/// backend. Tolerances are relative to each tensor's scale (see <see cref="Close"/>).
/// </summary>
[Collection(Nabla.Tests.Kernels.KernelSettingsCollection.Name)]
public class ConvolutionParityTests
{
    private static readonly Lazy<(Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata)> Fixture = new(() =>
    {
        var tensors = SafeTensors.Load(TestData.Fixture("conv_ops.safetensors"), out var metadata);
        return (tensors, metadata);
    });

    private static Tensor Get(string name) => Fixture.Value.Tensors[name];
    private static Tensor Leaf(string name) => Get(name).Clone().RequiresGrad_();
    private static JsonElement Settings(string name) => JsonDocument.Parse(Fixture.Value.Metadata[name]).RootElement;

    private static Size2 Pair(JsonElement settings, string key, Size2 fallback)
    {
        if (!settings.TryGetProperty(key, out var value)) return fallback;
        return value.ValueKind == JsonValueKind.Array ? new Size2(value[0].GetInt32(), value[1].GetInt32()) : value.GetInt32();
    }

    public static TheoryData<string, string> ConvCases() => Cases("conv_basic", "conv_stride2_pad12", "conv_dilation2", "conv_groups2",
        "conv_depthwise", "conv_depthwise_x2_stride2", "conv_depthwise_dilation2", "conv_1x1", "conv_1x1_stride2", "conv_lenet_like",
        "conv_odd", "conv_wide_rows",
        "conv_winograd_resnet", "conv_winograd_pad0_wide", "conv_winograd_pad21", "conv_winograd_tiny");

    public static TheoryData<string, string> PoolCases() => Cases("maxpool_k2", "maxpool_k3_s2_p1", "maxpool_dilated", "maxpool_ties",
        "avgpool_k2", "avgpool_k3_s2_p1", "avgpool_k3_s2_p1_exclude", "avgpool_rect_exclude", "adaptive_3x4", "adaptive_1x1", "adaptive_up");

    private static TheoryData<string, string> Cases(params string[] names)
    {
        var data = new TheoryData<string, string>();
        foreach (var name in names)
            foreach (var backend in new[] { "cpu", "reference" }) data.Add(name, backend);
        return data;
    }

    private static IDisposable UseBackend(string backend) =>
        Backend.Use(backend == "reference" ? ReferenceBackend.Instance : CpuBackend.Instance);

    [Theory]
    [MemberData(nameof(ConvCases))]
    public void Conv2dMatchesPyTorch(string name, string backend)
    {
        using var _ = UseBackend(backend);
        var settings = Settings(name);
        var x = Leaf(name + "/x");
        var w = Leaf(name + "/w");
        var b = Fixture.Value.Tensors.ContainsKey(name + "/b") ? Leaf(name + "/b") : null;
        var y = F.Conv2d(x, w, b, Pair(settings, "stride", 1), Pair(settings, "padding", 0), Pair(settings, "dilation", 1),
            settings.TryGetProperty("groups", out var groups) ? groups.GetInt32() : 1);
        y.Backward(Get(name + "/dy"));
        Close.Assert(Get(name + "/y"), y, 1e-5, name + " y");
        Close.Assert(Get(name + "/dx"), x.Grad!, 1e-5, name + " dx");
        Close.Assert(Get(name + "/dw"), w.Grad!, 1e-5, name + " dw");
        if (b != null) Close.Assert(Get(name + "/db"), b.Grad!, 1e-5, name + " db");
    }

    [Theory]
    [MemberData(nameof(PoolCases))]
    public void PoolingMatchesPyTorch(string name, string backend)
    {
        using var _ = UseBackend(backend);
        var settings = Settings(name);
        var x = Leaf(name + "/x");
        Tensor y;
        if (name.StartsWith("adaptive"))
            y = F.AdaptiveAvgPool2d(x, Pair(settings, "output_size", 1));
        else
        {
            var kernel = Pair(settings, "kernel_size", 1);
            var stride = Pair(settings, "stride", kernel);
            var padding = Pair(settings, "padding", 0);
            y = name.StartsWith("max")
                ? F.MaxPool2d(x, kernel, stride, padding, Pair(settings, "dilation", 1))
                : F.AvgPool2d(x, kernel, stride, padding, !settings.TryGetProperty("count_include_pad", out var include) || include.GetBoolean());
        }
        y.Backward(Get(name + "/dy"));
        Close.Assert(Get(name + "/y"), y, 1e-6, name + " y");
        Close.Assert(Get(name + "/dx"), x.Grad!, 1e-6, name + " dx");
    }

    [Theory]
    [InlineData("batchnorm_train", "cpu")]
    [InlineData("batchnorm_train", "reference")]
    [InlineData("batchnorm_eval", "cpu")]
    [InlineData("batchnorm_eval", "reference")]
    [InlineData("batchnorm_add_relu_train", "cpu")]
    [InlineData("batchnorm_add_relu_train", "reference")]
    [InlineData("batchnorm_relu_train", "cpu")]
    [InlineData("batchnorm_relu_train", "reference")]
    [InlineData("batchnorm_add_relu_eval", "cpu")]
    [InlineData("batchnorm_add_relu_eval", "reference")]
    public void BatchNormMatchesPyTorch(string name, string backend)
    {
        using var _ = UseBackend(backend);
        var settings = Settings(name);
        var module = new BatchNorm2d(3, eps: settings.GetProperty("eps").GetSingle(), momentum: settings.GetProperty("momentum").GetSingle());
        module.LoadStateDict(new Dictionary<string, Tensor>
        {
            ["weight"] = Get(name + "/w"), ["bias"] = Get(name + "/b"),
            ["running_mean"] = Get(name + "/running_mean_before"), ["running_var"] = Get(name + "/running_var_before"),
        });
        module.Train(settings.GetProperty("training").GetBoolean());
        var x = Leaf(name + "/x");
        // The fused cases are PyTorch's relu(batch_norm(x) + residual) (or relu(batch_norm(x))): one op here.
        bool fused = name.Contains("relu");
        var residual = settings.TryGetProperty("residual", out var r) && r.GetBoolean() ? Leaf(name + "/residual") : null;
        var y = fused ? module.Forward(x, residual, relu: true) : module.Forward(x);
        y.Backward(Get(name + "/dy"));
        if (residual != null) Close.Assert(Get(name + "/dresidual"), residual.Grad!, 1e-5, name + " residual gradient");
        Close.Assert(Get(name + "/y"), y, 1e-5, name + " y");
        Close.Assert(Get(name + "/dx"), x.Grad!, 1e-5, name + " dx");
        Close.Assert(Get(name + "/dw"), module.Weight!.Grad!, 1e-5, name + " dw");
        Close.Assert(Get(name + "/db"), module.Bias!.Grad!, 1e-5, name + " db");
        Close.Assert(Get(name + "/running_mean_after"), module.RunningMean, 1e-6, name + " running_mean");
        Close.Assert(Get(name + "/running_var_after"), module.RunningVar, 1e-6, name + " running_var");
    }
}
