using System.Text.Json;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.Optim;

namespace Nabla.Tests.Models;

/// <summary>
/// llm.c's test, for Nabla: a tiny GPT-2 with fixed weights run in PyTorch (tests/reference/make_gpt2_fixture.py)
/// and here must agree on the logits, the loss, the gradient of every parameter, and the parameters after
/// three AdamW steps.
/// </summary>
public class Gpt2ParityTests
{
    private readonly Dictionary<string, Tensor> _fixture;
    private readonly Dictionary<string, string> _meta;
    private readonly Gpt2Model _model;

    public Gpt2ParityTests()
    {
        _fixture = SafeTensors.Load(TestData.Fixture("gpt2_tiny.safetensors"), out _meta);
        _model = new Gpt2Model(Gpt2Config.FromJson(_meta["config"], "fixture"));
        _model.LoadStateDict(Prefixed("input/"));
    }

    private Dictionary<string, Tensor> Prefixed(string prefix) =>
        _fixture.Where(kv => kv.Key.StartsWith(prefix)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);

    /// <summary>|a - e| ≤ tol·(|e| + scale), where scale is the tensor's typical magnitude (mean |e|), so tiny
    /// entries of a tensor are judged against its overall size rather than their own.</summary>
    private static void AssertClose(Tensor expected, Tensor actual, double tol, string what, Func<int, double>? extra = null)
    {
        Assert.Equal(expected.Shape.ToArray(), actual.Shape.ToArray());
        var e = expected.ToArray();
        var a = actual.ToArray();
        double scale = e.Average(v => Math.Abs(v)) + 1e-12;
        for (int i = 0; i < e.Length; i++)
            Assert.True(Math.Abs(a[i] - e[i]) <= tol * (Math.Abs(e[i]) + scale) + (extra?.Invoke(i) ?? 0), $"{what}[{i}]: PyTorch {e[i]:G8}, Nabla {a[i]:G8}");
    }

    [Fact]
    public void LogitsLossAndEveryGradientMatchPyTorch()
    {
        var logits = _model.Forward(_fixture["tokens"]);
        AssertClose(_fixture["logits"], logits, 1e-4, "logits");
        var loss = Gpt2Model.Loss(logits, _fixture["targets"]);
        Assert.Equal(_fixture["loss"].Item(), loss.Item(), 4);
        loss.Backward();
        var grads = Prefixed("grad/");
        foreach (var (name, p) in _model.NamedParameters())
            AssertClose(grads[name], p.Grad!, 1e-4, $"grad {name}");
        Assert.Equal(grads.Count, _model.NamedParameters().Count());
    }

    [Fact]
    public void ParametersAfterThreeAdamWStepsMatchPyTorch()
    {
        var h = JsonSerializer.Deserialize<Dictionary<string, float>>(_meta["adamw"])!;
        var (decay, noDecay) = _model.WeightDecayGroups();
        var optimizer = new AdamW([new ParamGroup(decay, weightDecay: h["weight_decay"]), new ParamGroup(noDecay, weightDecay: 0)],
            h["lr"], h["beta1"], h["beta2"], h["eps"]);
        var losses = _fixture["step_losses"].ToArray();
        for (int step = 0; step < 3; step++)
        {
            optimizer.ZeroGrad();
            var loss = Gpt2Model.Loss(_model.Forward(_fixture["tokens"]), _fixture["targets"]);
            Assert.Equal(losses[step], loss.Item(), 4);
            loss.Backward();
            optimizer.Step();
        }
        // Adam moves each weight by about lr·m/√v whatever the gradient's size, so where a gradient is float32
        // rounding noise (|g| below 1e-3 of its tensor's mean |g|; ~1% of the weights here) the direction of
        // the step is noise too, in PyTorch as in Nabla: those weights may differ by up to 3 steps of lr.
        var expected = Prefixed("step3/");
        var firstGrads = Prefixed("grad/");
        int noisy = 0, total = 0;
        foreach (var (name, p) in _model.NamedParameters())
        {
            var g = firstGrads[name].ToArray();
            double meanGrad = g.Average(v => Math.Abs(v));
            bool Noisy(int i) => Math.Abs(g[i]) < 1e-3 * meanGrad;
            noisy += Enumerable.Range(0, g.Length).Count(Noisy);
            total += g.Length;
            AssertClose(expected[name], p, 1e-4, $"{name} after 3 steps", i => Noisy(i) ? 3 * h["lr"] : 0);
        }
        Assert.True(noisy < 0.03 * total, $"{noisy} of {total} gradients are below the noise threshold");
    }
}
