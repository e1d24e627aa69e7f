using System.Text.Json;

namespace Nabla.Tests.Parity;

/// <summary>
/// Replays one op case of a fixture file (see tests/reference/make_fixtures.py): builds the base inputs, applies
/// the recorded view steps, runs the op, compares the output, then back-propagates PyTorch's random upstream
/// gradient and compares the gradient of every float input.
/// </summary>
public static class OpCase
{
    public static void Run(string file, string name)
    {
        var fx = ParityFixture.Get(file);
        var meta = fx.Meta(name);
        string op = meta.GetProperty("op").GetString()!;
        var args = meta.GetProperty("args");
        double rtol = meta.TryGetProperty("rtol", out var r) ? r.GetDouble() : Close.Rtol;
        double atol = meta.TryGetProperty("atol", out var a) ? a.GetDouble() : Close.Atol;
        var specs = meta.GetProperty("inputs").EnumerateArray().ToArray();

        var leaves = new Tensor[specs.Length];
        var inputs = new Tensor[specs.Length];
        for (int i = 0; i < specs.Length; i++)
        {
            leaves[i] = fx.Fresh($"{name}/x{i}");
            if (specs[i].GetProperty("grad").GetBoolean()) leaves[i].RequiresGrad = true;
            inputs[i] = ApplyViews(leaves[i], specs[i].GetProperty("views"));
        }
        string what = $"{file} case '{name}' ({op})";

        var (y, indices) = Apply(op, inputs, args);
        if (fx.Has($"{name}/y")) Close.Tensor($"{what} output", fx[$"{name}/y"], y, rtol, atol);
        else
        {
            Close.Tensor($"{what} values", fx[$"{name}/y0"], y, rtol, atol);
            Close.Tensor($"{what} indices", fx[$"{name}/y1"], indices!);
        }
        if (!fx.Has($"{name}/gy")) return;

        y.Backward(fx.Fresh($"{name}/gy"));
        for (int i = 0; i < specs.Length; i++)
        {
            if (!fx.Has($"{name}/gx{i}")) continue;
            var expected = fx[$"{name}/gx{i}"];
            var grad = leaves[i].Grad ?? Tensor.Zeros(leaves[i].Shape.ToArray());
            Close.Tensor($"{what} gradient of input {i}", expected, grad, rtol, atol);
        }
    }

    /// <summary>The view steps of the fixture format, in the same order PyTorch applied them.</summary>
    public static Tensor ApplyViews(Tensor t, JsonElement views)
    {
        foreach (var step in views.EnumerateArray())
        {
            var s = step.EnumerateArray().ToArray();
            int I(int k) => s[k].GetInt32();
            int[] Rest(int from) => s[from..].Select(e => e.GetInt32()).ToArray();
            t = s[0].GetString() switch
            {
                "t" => t.Transpose(I(1), I(2)),
                "p" => t.Permute(Rest(1)),
                "s" => t.Slice(I(1), I(2), I(3), I(4)),
                "n" => t.Narrow(I(1), I(2), I(3)),
                "e" => t.Expand(Rest(1)),
                "r" => t.Reshape(Rest(1)),
                "v" => t.View(Rest(1)),
                "u" => t.Unfold(I(1), I(2), I(3)),
                "as" => t.AsStrided(Ints(s[1]), Ints(s[2]), I(3)),
                "c" => t.Contiguous(),
                "sel" => t.Select(I(1), I(2)),
                "sq" => t.Squeeze(I(1)),
                "usq" => t.Unsqueeze(I(1)),
                "f" => t.Flatten(I(1), I(2)),
                "split" => t.Split(I(1), I(2))[I(3)],
                "chunk" => t.Chunk(I(1), I(2))[I(3)],
                "T" => t.T,
                var k => throw new NotSupportedException($"Unknown view step '{k}'."),
            };
        }
        return t;
    }

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    private static Reduction ReductionOf(JsonElement args) =>
        !args.TryGetProperty("reduction", out var r) ? Reduction.Mean : r.GetString() switch
        {
            "mean" => Reduction.Mean,
            "sum" => Reduction.Sum,
            "none" => Reduction.None,
            var x => throw new NotSupportedException(x),
        };

    /// <summary>Runs op <paramref name="op"/> as a Nabla user would write it.</summary>
    public static (Tensor Y, Tensor? Indices) Apply(string op, Tensor[] v, JsonElement a)
    {
        float P(string k) => a.GetProperty(k).GetSingle();
        int Int(string k) => a.GetProperty(k).GetInt32();
        bool B(string k) => a.GetProperty(k).GetBoolean();
        int[] Dims() => Ints(a.GetProperty("dims"));
        switch (op)
        {
            case "max_dim": { var (y, i) = v[0].Max(Int("dim"), B("keepdim")); return (y, i); }
            case "min_dim": { var (y, i) = v[0].Min(Int("dim"), B("keepdim")); return (y, i); }
        }
        Tensor result = op switch
        {
            "add" => v[0].Add(v[1]),
            "sub" => v[0].Sub(v[1]),
            "mul" => v[0].Mul(v[1]),
            "div" => v[0].Div(v[1]),
            "pow" => v[0].Pow(v[1]),
            "maximum" => v[0].Maximum(v[1]),
            "minimum" => v[0].Minimum(v[1]),
            "gt" => v[0].Gt(v[1]),
            "lt" => v[0].Lt(v[1]),
            "eq" => v[0].Eq(v[1]),
            "add_s" => v[0] + P("s"),
            "sub_s" => v[0] - P("s"),
            "mul_s" => v[0] * P("s"),
            "div_s" => v[0] / P("s"),
            "rsub_s" => P("s") - v[0],
            "rdiv_s" => P("s") / v[0],
            "pow_s" => v[0].Pow(P("p")),
            "clamp" => v[0].Clamp(P("min"), P("max")),
            "neg" => -v[0],
            "exp" => v[0].Exp(),
            "log" => v[0].Log(),
            "sqrt" => v[0].Sqrt(),
            "abs" => v[0].Abs(),
            "square" => v[0].Square(),
            "relu" => v[0].Relu(),
            "leaky_relu" => v[0].LeakyRelu(P("slope")),
            "gelu" => v[0].Gelu(a.GetProperty("approximate").GetString() == "tanh" ? GeluApproximation.Tanh : GeluApproximation.None),
            "silu" => v[0].Silu(),
            "sigmoid" => v[0].Sigmoid(),
            "tanh" => v[0].Tanh(),
            "softplus" => new Nabla.NN.Softplus().Forward(v[0]),
            "sum" => v[0].Sum(Dims(), B("keepdim")),
            "sum_all" => v[0].Sum(),
            "mean" => v[0].Mean(Dims(), B("keepdim")),
            "mean_all" => v[0].Mean(),
            "var" => v[0].Var(Dims(), B("keepdim"), B("unbiased")),
            "argmax" => v[0].ArgMax(Int("dim"), B("keepdim")),
            "max_all" => v[0].Max(),
            "min_all" => v[0].Min(),
            "softmax" => v[0].Softmax(Int("dim")),
            "log_softmax" => v[0].LogSoftmax(Int("dim")),
            "matmul" => v[0].MatMul(v[1]),
            "linear" => F.Linear(v[0], v[1], v.Length > 2 ? v[2] : null),
            "cross_entropy" => F.CrossEntropy(v[0], v[1], ReductionOf(a), Int("ignore_index"), P("label_smoothing")),
            "mse_loss" => F.MseLoss(v[0], v[1], ReductionOf(a)),
            "bce_logits" => F.BinaryCrossEntropyWithLogits(v[0], v[1], ReductionOf(a)),
            "layer_norm" => F.LayerNorm(v[0], Ints(a.GetProperty("shape")), v.Length > 1 ? v[1] : null, v.Length > 2 ? v[2] : null, P("eps")),
            "embedding" => F.Embedding(v[0], v[1]),
            "cat" => Tensor.Concat(v, Int("dim")),
            "stack" => Tensor.Stack(v, Int("dim")),
            "gather" => v[0].Gather(Int("dim"), v[1]),
            "index_select" => v[0].IndexSelect(Int("dim"), v[1]),
            "index_copy" => v[0].IndexCopy(v[1], v[2]),
            "where" => Tensor.Where(v[0], v[1], v[2]),
            "id" => v[0],
            _ => throw new NotSupportedException($"No Nabla mapping for fixture op '{op}'."),
        };
        return (result, null);
    }
}
