namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>Per-core data cache sizes in bytes, read from Linux sysfs at start-up (Zen 4 values where unreadable).</summary>
internal static class CacheSizes
{
    public static readonly int L1 = Read(1, 32 * 1024);
    public static readonly int L2 = Read(2, 1024 * 1024);
    public static readonly int L3 = Read(3, 32 * 1024 * 1024);

    private static int Read(int level, int fallback)
    {
        try
        {
            const string root = "/sys/devices/system/cpu/cpu0/cache";
            if (!Directory.Exists(root)) return fallback;
            foreach (var index in Directory.EnumerateDirectories(root, "index*"))
            {
                if (File.ReadAllText(Path.Combine(index, "level")).Trim() != level.ToString()) continue;
                if (File.ReadAllText(Path.Combine(index, "type")).Trim() == "Instruction") continue;
                return ParseSize(File.ReadAllText(Path.Combine(index, "size")).Trim()) is > 0 and var size ? size : fallback;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return fallback;
    }

    /// <summary>Parses sysfs sizes such as "32K", "1024K", "32768K" or "1M".</summary>
    private static int ParseSize(string text)
    {
        long scale = 1;
        if (text.EndsWith('K')) scale = 1024;
        else if (text.EndsWith('M')) scale = 1024 * 1024;
        var digits = scale == 1 ? text : text[..^1];
        return long.TryParse(digits, out var value) ? (int)Math.Min(int.MaxValue, value * scale) : 0;
    }
}

/// <summary>
/// Cache blocking for one micro-kernel shape (GotoBLAS/BLIS): a kc-deep packed sliver of B (kc × NR) stays in L1 while
/// the kernel walks down a packed block of A (MC × kc) held in L2; the packed block of B (kc × NC) is reused for all
/// of M from L3.
/// </summary>
internal readonly record struct GemmBlocking(int MC, int KC, int NC)
{
    public static GemmBlocking For(int mr, int nr)
    {
        // The B sliver takes half of L1, leaving the other half for the A sliver streaming past and the C tile.
        int kc = Math.Clamp(CacheSizes.L1 / 2 / (nr * sizeof(float)) / 8 * 8, 64, 512);
        // The A block takes half of L2; the rest holds B slivers on their way to L1 and the C tiles.
        int mc = Math.Clamp(CacheSizes.L2 / 2 / (kc * sizeof(float)) / mr * mr, mr, 4096 / mr * mr);
        // The B block shares L3 with the other cores' blocks.
        int nc = Math.Clamp(CacheSizes.L3 / 8 / (kc * sizeof(float)) / nr * nr, nr, 8192 / nr * nr);
        return new GemmBlocking(mc, kc, nc);
    }
}
