using Nabla.IO;
using Nabla.Models;
using Nabla.Optim;

namespace Nabla.Tests.Optim;

/// <summary>An optimizer state file that lost or damaged entries is refused, naming the file and the entry,
/// and the optimizer keeps its previous state.</summary>
public class OptimizerStateValidationTests
{
    private static (Mlp Model, Optimizer Optimizer) Stepped(Func<Mlp, Optimizer> make)
    {
        var model = new Mlp(3, [4], 2, generator: new Generator(1));
        var optimizer = make(model);
        F.CrossEntropy(model.Forward(Tensor.Randn(new Generator(2), 6, 3)), Tensor.FromArray([0, 1, 0, 1, 1, 0])).Backward();
        optimizer.Step();
        return (model, optimizer);
    }

    private static void Refused(Dictionary<string, Tensor> state, Func<Mlp, Optimizer> make, params string[] mentions)
    {
        var (_, fresh) = Stepped(make);
        var before = fresh.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
        var e = Assert.Throws<CheckpointException>(() => fresh.LoadStateDict(state, "run/optimizer.safetensors"));
        Assert.StartsWith("run/optimizer.safetensors: ", e.Message);
        foreach (var m in mentions) Assert.Contains(m, e.Message);
        Assert.Equal(before.Keys.Order(), fresh.StateDict().Keys.Order());
        foreach (var (key, values) in fresh.StateDict()) Assert.Equal(before[key], values.ToArray());
    }

    private static readonly Func<Mlp, Optimizer> AdamW = m => new AdamW(m.Parameters(), 1e-2f);

    [Fact]
    public void AMissingMomentIsNamed()
    {
        var state = Stepped(AdamW).Optimizer.StateDict();
        state.Remove("1.exp_avg_sq");
        Refused(state, AdamW, "'1.exp_avg_sq' is missing");
    }

    [Fact]
    public void AllMomentsMissingAfterStepsIsRefused()
    {
        var state = Stepped(AdamW).Optimizer.StateDict();
        foreach (var key in state.Keys.Where(k => k != "step").ToList()) state.Remove(key);
        Refused(state, AdamW, "no exp_avg / exp_avg_sq tensors after 1 steps");
    }

    [Fact]
    public void ABufferOfAnotherOptimizerIsRefused()
    {
        var state = Stepped(AdamW).Optimizer.StateDict();
        state["0.momentum_buffer"] = state["0.exp_avg"];
        Refused(state, AdamW, "unexpected entry '0.momentum_buffer'", "exp_avg, exp_avg_sq");
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void NonFiniteMomentsAreRefused(float bad)
    {
        var state = Stepped(AdamW).Optimizer.StateDict();
        var values = state["2.exp_avg"].ToArray();
        values[0] = bad;
        state["2.exp_avg"] = Tensor.FromArray(values);
        Refused(state, AdamW, "'2.exp_avg' holds NaN or infinite values");
    }

    [Fact]
    public void AMalformedStepCounterIsRefused()
    {
        var state = Stepped(AdamW).Optimizer.StateDict();
        state["step"] = Tensor.FromArray(Array.Empty<int>());
        Refused(state, AdamW, "'step' must be one non-negative Int32");
        state["step"] = Tensor.FromArray([-3]);
        Refused(state, AdamW, "'step' must be one non-negative Int32");
    }

    [Fact]
    public void SgdWithoutMomentumKeepsNoBuffersAndLoadsAStepCounterAlone()
    {
        Func<Mlp, Optimizer> sgd = m => new SGD(m.Parameters(), 1e-2f);
        var (_, saved) = Stepped(sgd);
        var (_, loaded) = Stepped(sgd);
        loaded.LoadStateDict(saved.StateDict(), "sgd.safetensors");
        Assert.Equal(["step"], loaded.StateDict().Keys);
    }
}
