using Nabla.Optim;

namespace Nabla.Tests.Optim;

/// <summary>Resuming from an optimizer state dict continues exactly where an uninterrupted run goes.</summary>
public class OptimizerStateTests
{
    private static Tensor[] Params() => [Tensor.Randn(new Generator(1), 7).RequiresGrad_(), Tensor.Randn(new Generator(2), 3, 5).RequiresGrad_()];

    private static void Step(Optimizer opt, Tensor[] ps, int s)
    {
        for (int i = 0; i < ps.Length; i++) ps[i].Grad = Tensor.Randn(new Generator((ulong)(100 * s + i)), ps[i].Shape.ToArray());
        opt.Step();
    }

    public static TheoryData<string> Kinds => new() { "sgd", "adam", "adamw", "rmsprop" };

    private static Optimizer Make(string kind, Tensor[] ps) => kind switch
    {
        "sgd" => new SGD(ps, 0.1f, momentum: 0.9f, nesterov: true),
        "adam" => new Adam(ps, 1e-2f, weightDecay: 0.1f),
        "adamw" => new AdamW(ps, 1e-2f),
        "rmsprop" => new RMSProp(ps, 1e-2f, momentum: 0.5f, centered: true),
        _ => throw new ArgumentException(kind),
    };

    [Theory, MemberData(nameof(Kinds))]
    public void ResumesExactly(string kind)
    {
        var straight = Params();
        var a = Make(kind, straight);
        for (int s = 0; s < 4; s++) Step(a, straight, s);

        var first = Params();
        var b = Make(kind, first);
        for (int s = 0; s < 2; s++) Step(b, first, s);
        var saved = b.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
        var resumed = first.Select(p => p.Detach().Clone().RequiresGrad_()).ToArray();
        var c = Make(kind, resumed);
        c.LoadStateDict(saved);
        Assert.Equal(2, c.StepCount);
        for (int s = 2; s < 4; s++) Step(c, resumed, s);

        for (int i = 0; i < straight.Length; i++) Assert.Equal(straight[i].ToArray(), resumed[i].ToArray());
    }

    [Fact]
    public void ParamGroupsOverrideLearningRateAndWeightDecay()
    {
        var p = Tensor.Ones(3).RequiresGrad_();
        var q = Tensor.Ones(3).RequiresGrad_();
        var opt = new SGD([new ParamGroup([p]), new ParamGroup([q], learningRate: 0.5f, weightDecay: 1f)], 0.1f);
        p.Grad = Tensor.Ones(3);
        q.Grad = Tensor.Ones(3);
        opt.Step();
        Assert.Equal(new[] { 0.9f, 0.9f, 0.9f }, p.ToArray());
        Assert.Equal(new[] { 0f, 0f, 0f }, q.ToArray()); // 1 - 0.5·(1 + 1·1)
    }
}
