namespace Nabla.Data;

/// <summary>
/// Label noise as Nakkiran et al. (2019, "Deep Double Descent") add it: each training label is, with probability p,
/// replaced by one of the other classes drawn uniformly (so a noisy label is always wrong). The test set stays clean.
/// </summary>
public static class LabelNoise
{
    /// <summary>A copy of <paramref name="labels"/> (class ids 0..classes-1) with a fraction <paramref name="p"/> of
    /// them corrupted; the same seed corrupts the same labels the same way.</summary>
    public static int[] Corrupt(ReadOnlySpan<int> labels, int classes, double p, ulong seed)
    {
        if (p is < 0 or > 1 || double.IsNaN(p)) throw new ArgumentException($"Label noise must be a probability in [0, 1], got {p}.");
        if (classes < 2) throw new ArgumentException($"Label noise needs at least two classes, got {classes}.");
        var generator = new Generator(seed);
        var noisy = labels.ToArray();
        for (int i = 0; i < noisy.Length; i++)
        {
            if ((uint)noisy[i] >= (uint)classes) throw new ArgumentException($"Label {noisy[i]} at index {i} is not a class id below {classes}.");
            // Draw both numbers for every label, so which labels are corrupted does not depend on earlier draws' outcomes.
            bool corrupt = generator.NextDouble() < p;
            int other = generator.NextInt(classes - 1);
            if (corrupt) noisy[i] = other < noisy[i] ? other : other + 1; // any class but the true one, uniformly
        }
        return noisy;
    }
}
