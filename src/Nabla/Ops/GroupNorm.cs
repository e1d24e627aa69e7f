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

    /// <summary>
    /// Channel-wise dropout (PyTorch's Dropout2d): in training each channel of each sample of x (N, C, ...) is
    /// zeroed as a whole with probability <paramref name="p"/> and the rest are scaled by 1/(1-p); the identity
    /// otherwise. Neighbouring pixels of a feature map are strongly correlated, so dropping single pixels barely
    /// regularises a convolutional network; dropping whole maps does (Tompson et al., 2015).
    /// </summary>
    public static Tensor Dropout2d(Tensor x, float p, bool training = true, Generator? generator = null)
    {
        if (p is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(p), $"Dropout2d probability must be in [0, 1], got {p}.");
        if (x.Rank < 3) throw new ArgumentException($"Dropout2d: input must be (batch, channels, ...spatial), got {x.ShapeString}.");
        if (!training || p == 0) return x;
        if (p == 1) return x.Mul(0f);
        var gen = generator ?? Generator.Default;
        int N = x.Size(0), C = x.Size(1);
        float keep = 1f / (1f - p);
        var mask = new float[N * C];
        for (int i = 0; i < mask.Length; i++) mask[i] = gen.NextFloat() >= p ? keep : 0f;
        var maskShape = new int[x.Rank];
        Array.Fill(maskShape, 1);
        (maskShape[0], maskShape[1]) = (N, C);
        return x.Mul(Tensor.FromArray(mask, maskShape)); // broadcast over the spatial dimensions
    }
}
