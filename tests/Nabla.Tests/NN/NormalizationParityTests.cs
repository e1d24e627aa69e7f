using Nabla.NN;
using Nabla.Tests.Parity;
using Close = Nabla.Tests.Ops.Close;

namespace Nabla.Tests.NN;

/// <summary>
/// BatchNorm1d and GroupNorm modules against PyTorch 1.13 (tests/reference/make_vision_fixtures.py): output,
/// gradients of input, weight and bias for a random upstream gradient, and for batch norm the running statistics
/// and num_batches_tracked (loaded from PyTorch's int64) after the step. Dropout2d is random, so its structure and
/// statistics are checked instead.
/// </summary>
public class NormalizationParityTests
{
    private static ParityFixture Fixture => ParityFixture.Get("vision_layers.safetensors");

    [Theory]
    [InlineData("batchnorm1d_2d_train")]
    [InlineData("batchnorm1d_3d_train")]
    [InlineData("batchnorm1d_eval")]
    public void BatchNorm1dMatchesPyTorch(string name)
    {
        var bn = new BatchNorm1d(Fixture[name + "/w"].Size(0));
        bn.LoadStateDict(new Dictionary<string, Tensor>
        {
            ["weight"] = Fixture[name + "/w"], ["bias"] = Fixture[name + "/b"],
            ["running_mean"] = Fixture[name + "/running_mean_before"], ["running_var"] = Fixture[name + "/running_var_before"],
            ["num_batches_tracked"] = Fixture[name + "/num_batches_tracked_before"],
        });
        bn.Train(Fixture.Meta(name).GetProperty("training").GetBoolean());
        var x = Fixture.Fresh(name + "/x").RequiresGrad_();
        var y = bn.Forward(x);
        y.Backward(Fixture[name + "/dy"]);
        Close.Assert(Fixture[name + "/y"], y, 1e-5, name + " y");
        Close.Assert(Fixture[name + "/dx"], x.Grad!, 1e-5, name + " dx");
        Close.Assert(Fixture[name + "/dw"], bn.Weight!.Grad!, 1e-5, name + " dw");
        Close.Assert(Fixture[name + "/db"], bn.Bias!.Grad!, 1e-5, name + " db");
        Close.Assert(Fixture[name + "/running_mean_after"], bn.RunningMean, 1e-5, name + " running_mean");
        Close.Assert(Fixture[name + "/running_var_after"], bn.RunningVar, 1e-5, name + " running_var");
        Assert.Equal(Fixture[name + "/num_batches_tracked_after"].ToIntArray(), bn.NumBatchesTracked.ToIntArray());
        Assert.Equal(0, bn.NumBatchesTracked.Rank);
    }

    [Theory]
    [InlineData("groupnorm_4d")]
    [InlineData("groupnorm_3d")]
    [InlineData("groupnorm_one_group")]
    [InlineData("groupnorm_per_channel")]
    public void GroupNormMatchesPyTorch(string name)
    {
        var settings = Fixture.Meta(name);
        var gn = new GroupNorm(settings.GetProperty("groups").GetInt32(), Fixture[name + "/w"].Size(0), (float)settings.GetProperty("eps").GetDouble());
        gn.LoadStateDict(new Dictionary<string, Tensor> { ["weight"] = Fixture[name + "/w"], ["bias"] = Fixture[name + "/b"] });
        var x = Fixture.Fresh(name + "/x").RequiresGrad_();
        var y = gn.Forward(x);
        y.Backward(Fixture[name + "/dy"]);
        Close.Assert(Fixture[name + "/y"], y, 1e-5, name + " y");
        Close.Assert(Fixture[name + "/dx"], x.Grad!, 1e-4, name + " dx");
        Close.Assert(Fixture[name + "/dw"], gn.Weight!.Grad!, 1e-5, name + " dw");
        Close.Assert(Fixture[name + "/db"], gn.Bias!.Grad!, 1e-5, name + " db");
    }

    [Fact]
    public void CheckpointsWithoutNumBatchesTrackedLoadStrictlyAsInPyTorch()
    {
        var bn = new BatchNorm2d(2);
        bn.Train().Forward(Tensor.Randn(new Generator(1), 3, 2, 2, 2));
        Assert.Equal([1], bn.NumBatchesTracked.ToIntArray());
        bn.LoadStateDict(new Dictionary<string, Tensor>
        {
            ["weight"] = Tensor.Ones(2), ["bias"] = Tensor.Zeros(2), ["running_mean"] = Tensor.Zeros(2), ["running_var"] = Tensor.Ones(2),
        });
        Assert.Equal([0], bn.NumBatchesTracked.ToIntArray()); // reset, as PyTorch 1.13 does (it was 1)
        var e = Assert.Throws<Nabla.IO.CheckpointException>(() => bn.LoadStateDict(new Dictionary<string, Tensor> { ["weight"] = Tensor.Ones(2) }));
        Assert.DoesNotContain("num_batches_tracked", e.Message);
        Assert.Contains("missing tensor 'running_mean'", e.Message);
    }

    [Fact]
    public void NormalizationLayersNameTheExpectedInput()
    {
        Assert.Equal("BatchNorm1d: input must be (batch, channels) or (batch, channels, length), got [2, 3, 4, 5].",
            Assert.Throws<ArgumentException>(() => new BatchNorm1d(3).Forward(Tensor.Zeros(2, 3, 4, 5))).Message);
        Assert.Equal("BatchNorm2d: input must be (batch, channels, height, width), got [2, 3].",
            Assert.Throws<ArgumentException>(() => new BatchNorm2d(3).Forward(Tensor.Zeros(2, 3))).Message);
        Assert.Equal("GroupNorm: input must be (batch, 6 channels, ...), got [2, 4, 3].",
            Assert.Throws<ArgumentException>(() => new GroupNorm(2, 6).Forward(Tensor.Zeros(2, 4, 3))).Message);
        Assert.Throws<ArgumentException>(() => new GroupNorm(4, 6));
    }

    [Fact]
    public void Dropout2dZeroesWholeChannelsAtRateP()
    {
        const float p = 0.3f;
        int N = 40, C = 50, H = 3, W = 4;
        var x = Tensor.Ones(N, C, H, W).RequiresGrad_();
        var y = new Dropout2d(p, new Generator(5)).Forward(x);
        var values = y.ToArray();
        float keep = 1f / (1f - p);
        int dropped = 0;
        for (int map = 0; map < N * C; map++)
        {
            var pixels = values.AsSpan(map * H * W, H * W);
            float first = pixels[0];
            Assert.True(first == 0 || Math.Abs(first - keep) < 1e-6f, $"channel {map}: {first} is neither 0 nor 1/(1-p)");
            foreach (var v in pixels) Assert.Equal(first, v); // the whole map shares one draw
            if (first == 0) dropped++;
        }
        double sd = Math.Sqrt(N * C * p * (1 - p));
        Assert.InRange(dropped, N * C * p - 5 * sd, N * C * p + 5 * sd);
        y.Sum().Backward();
        Assert.Equal(values, x.Grad!.ToArray()); // the gradient is the same mask
        var layer = new Dropout2d(p);
        layer.Eval();
        Assert.Same(x, layer.Forward(x));
    }
}
