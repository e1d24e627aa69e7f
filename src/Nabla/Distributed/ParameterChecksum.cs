namespace Nabla.Distributed;

/// <summary>The ranks' parameters differ: a bug or a fault made them diverge, so their gradients no longer average
/// into one model's.</summary>
public sealed class RanksDivergedException(string message) : Exception(message);

/// <summary>
/// Detects ranks whose parameters have drifted apart. Each rank hashes the bits of its parameters (FNV-1a, 48
/// bits); the hashes are gathered as two 24-bit integers each (exact in a float), so every rank sees every rank's
/// hash and all of them stop together, naming the ranks that differ from rank 0.
/// </summary>
public static class ParameterChecksum
{
    /// <summary>A 48-bit hash of the parameters' exact bits, in order.</summary>
    public static ulong Hash(IEnumerable<Tensor> parameters)
    {
        ulong hash = 14695981039346656037UL;
        foreach (var p in parameters)
            foreach (var value in (p.IsContiguous ? p : p.Contiguous()).AsSpan())
            {
                hash ^= BitConverter.SingleToUInt32Bits(value);
                hash *= 1099511628211UL;
            }
        return (hash ^ (hash >> 48)) & 0xFFFF_FFFF_FFFFUL;
    }

    /// <summary>Throws <see cref="RanksDivergedException"/> on every rank when any rank's parameters differ from rank 0's.</summary>
    public static void Verify(ICommunicator communicator, IEnumerable<Tensor> parameters, int step)
    {
        if (communicator.Size == 1) return;
        ulong hash = Hash(parameters);
        Span<float> mine = [hash >> 24, hash & 0xFFFFFF];
        var all = new float[2 * communicator.Size];
        communicator.AllGather(mine, all);
        var differing = Enumerable.Range(1, communicator.Size - 1).Where(r => all[2 * r] != all[0] || all[2 * r + 1] != all[1]).ToList();
        if (differing.Count > 0)
            throw new RanksDivergedException($"step {step}: the parameters of rank{(differing.Count > 1 ? "s" : "")} {string.Join(", ", differing)} differ from rank 0's " +
                "(parameter checksums disagree); the ranks have diverged, so training stops. Resume from the last checkpoint.");
    }
}
