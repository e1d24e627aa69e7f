using Nabla.Optim;
using Nabla.Tests.Parity;

namespace Nabla.Tests.Optim;

/// <summary>
/// Optimizer steps, learning-rate schedules and gradient clipping against PyTorch (optim.safetensors): the same
/// initial parameters and the same gradient at every step, parameters compared after each step.
/// </summary>
public class OptimizerParityTests
{
    private const string File = "optim.safetensors";
    public static TheoryData<string> Optimizers
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var k in ParityFixture.Get(File).Metadata.Keys.Where(k => !k.Contains('/')).Order()) data.Add(k);
            return data;
        }
    }

    [Theory, MemberData(nameof(Optimizers))]
    public void StepsLikePyTorch(string name)
    {
        var fx = ParityFixture.Get(File);
        var meta = fx.Meta(name);
        var hp = meta.GetProperty("hp");
        float Hp(string key, float fallback) => hp.TryGetProperty(key, out var v) ? v.GetSingle() : fallback;
        bool Flag(string key) => hp.TryGetProperty(key, out var v) && v.GetBoolean();
        float Beta(int i, float fallback) => hp.TryGetProperty("betas", out var b) ? b[i].GetSingle() : fallback;
        int steps = meta.GetProperty("steps").GetInt32(), count = meta.GetProperty("params").GetInt32();
        var ps = Enumerable.Range(0, count).Select(i => fx.Fresh($"{name}/p{i}/init").RequiresGrad_()).ToArray();
        float lr = Hp("lr", 0), wd = Hp("weight_decay", 0);
        Optimizer opt = meta.GetProperty("type").GetString() switch
        {
            "sgd" => new SGD(ps, lr, Hp("momentum", 0), Hp("dampening", 0), wd, Flag("nesterov")),
            "adam" => new Adam(ps, lr, Beta(0, 0.9f), Beta(1, 0.999f), Hp("eps", 1e-8f), wd),
            "adamw" => new AdamW(ps, lr, Beta(0, 0.9f), Beta(1, 0.999f), Hp("eps", 1e-8f), wd),
            "rmsprop" => new RMSProp(ps, lr, Hp("alpha", 0.99f), Hp("eps", 1e-8f), wd, Hp("momentum", 0), Flag("centered")),
            var t => throw new NotSupportedException(t),
        };
        for (int s = 0; s < steps; s++)
        {
            for (int i = 0; i < count; i++) ps[i].Grad = fx.Fresh($"{name}/p{i}/grad{s}");
            opt.Step();
            // A few float32 steps against a float64 reference: rounding of the moments adds up a little.
            for (int i = 0; i < count; i++)
                Close.Tensor($"{name}: parameter {i} after step {s + 1}", fx[$"{name}/p{i}/step{s}"], ps[i], rtol: 1e-5, atol: 2e-6);
        }
    }

    private static Optimizer Dummy(float lr) => new SGD([Tensor.Zeros(1).RequiresGrad_()], lr);

    private static float[] Rates(LRScheduler scheduler, int n)
    {
        var rates = new float[n];
        for (int i = 0; i < n; i++)
        {
            rates[i] = scheduler.Optimizer.LearningRate;
            scheduler.Step();
        }
        return rates;
    }

    [Fact]
    public void StepLRMatchesPyTorch()
    {
        var fx = ParityFixture.Get(File);
        var expected = fx["sched/step_lr/lr"].ToArray();
        var rates = Rates(new StepLR(Dummy(0.5f), stepSize: 3, gamma: 0.5f), expected.Length);
        Close.Floats("StepLR learning rates", expected, rates, rtol: 1e-6, atol: 0);
    }

    [Fact]
    public void CosineWithWarmupMatchesPyTorch()
    {
        var fx = ParityFixture.Get(File);
        var meta = fx.Meta("sched/cosine_warmup");
        float baseLr = meta.GetProperty("base_lr").GetSingle(), minLr = meta.GetProperty("min_lr").GetSingle();
        int warmup = meta.GetProperty("warmup").GetInt32(), total = meta.GetProperty("total").GetInt32();
        var expected = fx["sched/cosine_warmup/lr"].ToArray();
        var rates = Rates(new CosineWithWarmup(Dummy(baseLr), warmup, total, minLr), expected.Length);
        // The documented formula, as a torch LambdaLR...
        Close.Floats("cosine-with-warmup learning rates (LambdaLR)", expected, rates, rtol: 1e-6, atol: 1e-9);
        // ...and its two halves against torch's own LinearLR and CosineAnnealingLR.
        Close.Floats("warm-up vs torch LinearLR", fx["sched/cosine_warmup/torch_linear"].ToArray(), rates[..warmup], rtol: 1e-6, atol: 1e-9);
        Close.Floats("decay vs torch CosineAnnealingLR", fx["sched/cosine_warmup/torch_cosine"].ToArray(), rates[warmup..(total + 1)], rtol: 1e-5, atol: 1e-8);
    }

    /// <summary>Discriminative learning rates: two parameter groups, one at a tenth of the optimizer's rate and
    /// without weight decay, under a warm-up + cosine schedule, as torch's AdamW with param_groups and LambdaLR.</summary>
    [Fact]
    public void ParameterGroupsFollowTheScheduleLikePyTorch()
    {
        var fx = ParityFixture.Get(File);
        var meta = fx.Meta("sched/groups");
        float baseLr = meta.GetProperty("base_lr").GetSingle(), minLr = meta.GetProperty("min_lr").GetSingle();
        float secondLr = meta.GetProperty("group_lrs")[1].GetSingle(), decay = meta.GetProperty("weight_decay")[0].GetSingle(), secondDecay = meta.GetProperty("weight_decay")[1].GetSingle();
        int warmup = meta.GetProperty("warmup").GetInt32(), total = meta.GetProperty("total").GetInt32(), steps = meta.GetProperty("steps").GetInt32();
        var p0 = fx.Fresh("sched/groups/p0/init").RequiresGrad_();
        var p1 = fx.Fresh("sched/groups/p1/init").RequiresGrad_();
        var optimizer = new AdamW([new ParamGroup([p0]), new ParamGroup([p1], learningRate: secondLr, weightDecay: secondDecay)], baseLr, weightDecay: decay);
        var schedule = new CosineWithWarmup(optimizer, warmup, total, minLr);
        var expectedRates = fx["sched/groups/lr"].ToArray();
        for (int s = 0; s < steps; s++)
        {
            float[] rates = [optimizer.Groups[0].LearningRate ?? optimizer.LearningRate, optimizer.Groups[1].LearningRate!.Value];
            Close.Floats($"group learning rates before step {s + 1}", expectedRates[(2 * s)..(2 * s + 2)], rates, rtol: 1e-6, atol: 1e-9);
            p0.Grad = fx.Fresh($"sched/groups/p0/grad{s}");
            p1.Grad = fx.Fresh($"sched/groups/p1/grad{s}");
            optimizer.Step();
            schedule.Step();
            Close.Tensor($"group 0's parameter after step {s + 1}", fx[$"sched/groups/p0/step{s}"], p0, rtol: 1e-5, atol: 2e-6);
            Close.Tensor($"group 1's parameter after step {s + 1}", fx[$"sched/groups/p1/step{s}"], p1, rtol: 1e-5, atol: 2e-6);
        }
    }

    [Theory]
    [InlineData("clips")]
    [InlineData("no_clip")]
    public void ClipGradNormMatchesPyTorch(string name)
    {
        var fx = ParityFixture.Get(File);
        var meta = fx.Meta($"clip/{name}");
        int count = meta.GetProperty("params").GetInt32();
        var ps = Enumerable.Range(0, count).Select(i =>
        {
            var before = fx[$"clip/{name}/g{i}/before"];
            var p = Tensor.Zeros(before.Shape.ToArray()).RequiresGrad_();
            p.Grad = fx.Fresh($"clip/{name}/g{i}/before");
            return p;
        }).ToArray();
        float norm = GradientClipping.ClipGradNorm(ps, meta.GetProperty("max_norm").GetSingle());
        Close.Floats($"clip/{name}: total norm", fx[$"clip/{name}/norm"].ToArray(), [norm]);
        for (int i = 0; i < count; i++) Close.Tensor($"clip/{name}: gradient {i}", fx[$"clip/{name}/g{i}/after"], ps[i].Grad!);
    }
}
