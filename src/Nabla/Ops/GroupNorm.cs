namespace Nabla;

public static partial class F
{
    /// <summary>
    /// Group normalisation of x (N, C, ...): the C channels of each sample form <paramref name="groups"/> groups of
    /// C/groups channels, each normalised by its own mean and biased variance, then ·weight + bias per channel.
    /// Seen as a batch of one sample with N·groups channels, that is exactly batch normalisation with batch
    /// statistics, so it runs on the batch-norm kernels (forward and backward) instead of a kernel of its own.
    /// </summary>
    public static Tensor GroupNorm(Tensor x, int groups, Tensor? weight = null, Tensor? bias = null, float eps = 1e-5f)
    {
        x.RequireFloat("GroupNorm");
        if (x.Rank < 2 || groups <= 0 || x.Size(1) % groups != 0)
            throw new ArgumentException($"GroupNorm: input {x.ShapeString} must be (batch, channels, ...) with channels divisible by {groups} groups.");
        int N = x.Size(0), C = x.Size(1), perGroup = N == 0 ? 0 : x.Count / (N * groups);
        if (N > 0 && perGroup <= 1)
            throw new ArgumentException($"GroupNorm: each group of input {x.ShapeString} holds {perGroup} value(s); normalising needs more than one.");
        foreach (var (t, name) in new[] { (weight, "weight"), (bias, "bias") })
            if (t != null && (t.Rank != 1 || t.Size(0) != C))
                throw new ArgumentException($"GroupNorm: {name} {t.ShapeString} must be a vector of the {C} channels of input {x.ShapeString}.");
        var y = BatchNorm(x.Reshape(1, N * groups, perGroup), null, null, training: true, eps: eps).Reshape(x.Shape.ToArray());
        var channelShape = new int[x.Rank];
        Array.Fill(channelShape, 1);
        channelShape[1] = C;
        if (weight != null) y = y.Mul(weight.View(channelShape));
        if (bias != null) y = y.Add(bias.View(channelShape));
        return y;
    }
}
