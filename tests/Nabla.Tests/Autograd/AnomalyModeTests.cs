using Nabla.Autograd;
using Nabla.Models.Gpt2;
using Nabla.NN;

namespace Nabla.Tests.Autograd;

/// <summary>Anomaly mode names the op, the module and the shape of the first non-finite value, forward or backward.</summary>
public class AnomalyModeTests
{
    private sealed class ExpModule : Module { public override Tensor Forward(Tensor input) => input.Exp(); }
    private sealed class SqrtModule : Module { public override Tensor Forward(Tensor input) => input.Sqrt(); }

    /// <summary>Linear(2, 3) whose every output is <paramref name="value"/> (zero weights, constant bias).</summary>
    private static Linear ConstantLinear(float value)
    {
        var linear = new Linear(2, 3);
        using var _ = GradMode.NoGrad();
        linear.Weight.CopyFrom(Tensor.Zeros(3, 2));
        linear.Bias!.CopyFrom(Tensor.Full(value, 3));
        return linear;
    }

    private static readonly Tensor Input = Tensor.FromArray(new float[] { 1, 2, 3, 4, 5, 6, 7, 8 }, 4, 2);

    [Fact]
    public void AnActivationThatOverflowsIsNamedWithItsModuleAndShape()
    {
        // exp(100) overflows float although every weight is finite
        var model = new Sequential(ConstantLinear(100f), new ExpModule());
        using (AnomalyMode.Enable())
        {
            Assert.True(AnomalyMode.IsEnabled);
            var e = Assert.Throws<NonFiniteValueException>(() => model.Forward(Input));
            Assert.Equal("Exp", e.OpName);
            Assert.Equal("1", e.ModulePath);
            Assert.Equal(new[] { 4, 3 }, e.Shape);
            Assert.False(e.InBackward);
            Assert.Equal("op Exp in module '1' produced Inf in its output of shape (4, 3) during the forward pass", e.Message);
        }
        Assert.False(AnomalyMode.IsEnabled);
    }

    [Fact]
    public void AGpt2WhoseMlpOverflowsNamesTheLinearInsideIt()
    {
        var config = new Gpt2Config { VocabSize = 11, MaxSequenceLength = 8, Channels = 32, Layers = 2, Heads = 4 };
        var model = new Gpt2Model(config, new Generator(5));
        using (GradMode.NoGrad())
        {
            // Finite weights whose products overflow: ln_2's shift makes every c_fc input sum to about C = 32,
            // and 32 · 1e38 is beyond float's 3.4e38.
            ((LayerNorm)model.GetSubmodule("h.1.ln_2")).Bias!.CopyFrom(Tensor.Ones(32));
            ((Linear)model.GetSubmodule("h.1.mlp.c_fc")).Weight.CopyFrom(Tensor.Full(1e38f, 128, 32));
        }
        Assert.All(model.Parameters(), p => Assert.All(p.ToArray(), v => Assert.True(float.IsFinite(v))));
        var tokens = Tensor.FromArray(new[] { 1, 2, 3, 4, 5, 6 }, 2, 3);

        using var _ = AnomalyMode.Enable();
        var e = Assert.Throws<NonFiniteValueException>(() => model.Forward(tokens));
        Assert.Equal("Linear", e.OpName);
        Assert.Equal("h.1.mlp.c_fc", e.ModulePath);
        Assert.Equal(new[] { 2, 3, 128 }, e.Shape);
        Assert.False(e.InBackward);
        Assert.StartsWith("op Linear in module 'h.1.mlp.c_fc' produced ", e.Message);

        // paths are relative to the module the caller ran
        var block = model.GetSubmodule("h.1");
        var x = Tensor.Ones(2, 3, 32).RequiresGrad_();
        Assert.Equal("mlp.c_fc", Assert.Throws<NonFiniteValueException>(() => block.Forward(x)).ModulePath);
    }

    [Fact]
    public void AGradientThatBecomesInfiniteInBackwardIsNamed()
    {
        // sqrt(0) = 0 is finite, but its derivative 1/(2·sqrt(0)) is not
        var model = new Sequential(ConstantLinear(0f), new SqrtModule());
        using var _ = AnomalyMode.Enable();
        var loss = model.Forward(Input).Sum();
        Assert.Equal(0f, loss.Item());
        var e = Assert.Throws<NonFiniteValueException>(() => loss.Backward());
        Assert.Equal("Sqrt", e.OpName);
        Assert.Equal("1", e.ModulePath);
        Assert.Equal(new[] { 4, 3 }, e.Shape);
        Assert.True(e.InBackward);
        Assert.Equal("op Sqrt in module '1' produced Inf in an input gradient of shape (4, 3) during the backward pass", e.Message);
    }

    [Fact]
    public void AnOpOutsideAnyModuleHasNoModulePath()
    {
        var x = Tensor.FromArray(new float[] { 0, 1 }).RequiresGrad_();
        using var _ = AnomalyMode.Enable();
        var e = Assert.Throws<NonFiniteValueException>(() => x.Log());
        Assert.Equal("Log", e.OpName);
        Assert.Null(e.ModulePath);
        Assert.Equal("op Log produced -Inf in its output of shape (2) during the forward pass", e.Message);
    }

    [Fact]
    public void WithoutAnomalyModeNonFiniteValuesPassSilently()
    {
        Assert.False(AnomalyMode.IsEnabled);
        var overflowing = new Sequential(ConstantLinear(100f), new ExpModule()).Forward(Input);
        Assert.All(overflowing.ToArray(), v => Assert.Equal(float.PositiveInfinity, v));

        var model = new Sequential(ConstantLinear(0f), new SqrtModule());
        model.Forward(Input).Sum().Backward();
        Assert.All(model.Parameters(), p => Assert.Contains(p.Grad!.ToArray(), v => !float.IsFinite(v)));
    }

    [Fact]
    public void NonFiniteInputsToViewsAreBlamedOnTheOpThatMadeThem()
    {
        var x = Tensor.FromArray(new float[] { 100, 1, 2, 3 }, 2, 2).RequiresGrad_();
        using var _ = AnomalyMode.Enable();
        var e = Assert.Throws<NonFiniteValueException>(() => x.Exp().Reshape(4).Sum());
        Assert.Equal("Exp", e.OpName);
        Assert.Equal(new[] { 2, 2 }, e.Shape);
    }
}
