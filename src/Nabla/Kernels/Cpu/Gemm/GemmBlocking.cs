namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>Per-core L1 data and L2 and shared L3 sizes in bytes, read from Linux sysfs at start-up (Zen 3 L1, Zen 4
/// L2 and L3 where unreadable).</summary>
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
/// Cache blocking for one micro-kernel shape (GotoBLAS/BLIS). The kernel runs kc steps per call on a packed B sliver
/// (kc × NR) and A sliver (MR × kc). In both designs below the packed block of A (MC × kc) takes half of L2 and is
/// reused for every B sliver, and the packed block of B (kc × NC) takes 1/8 of L3 and is reused for all of M.
/// </summary>
internal readonly record struct GemmBlocking(int KC, long AFloats, long BFloats)
{
    /// <summary>
    /// For the AVX-512 kernel: Zen 4 streams both slivers from L2 fast enough for the FMA units (one 64-byte load per
    /// 12 FMAs), so kc is not held to L1 size but made long, which reloads the C tile less often: the B sliver takes
    /// 1/8 of L2.
    /// </summary>
    public static GemmBlocking StreamedFromL2(int mr, int nr)
    {
        int kc = Math.Clamp(CacheSizes.L2 / 8 / (nr * sizeof(float)) / 8 * 8, 128, 2048);
        return new GemmBlocking(kc, CacheSizes.L2 / 2 / sizeof(float), CacheSizes.L3 / 8 / sizeof(float));
    }

    /// <summary>
    /// For the AVX2 kernel, as in BLIS's Zen 3 configuration (6 × 16, KC 256): the B sliver stays in half of L1 while
    /// the A slivers stream past it from L2 (kc = 256 on Zen 3's 32 KiB L1, 384 on a 48 KiB one). A 6 × 16 kernel
    /// needs 88 bytes per 12 FMAs; with kc = 1024 (the streamed design on Zen 3's 512 KiB L2) both slivers would come
    /// from L2, at half its bandwidth.
    /// </summary>
    public static GemmBlocking L1ResidentB(int mr, int nr)
    {
        int kc = Math.Clamp(CacheSizes.L1 / 2 / (nr * sizeof(float)) / 8 * 8, 128, 1024);
        return new GemmBlocking(kc, CacheSizes.L2 / 2 / sizeof(float), CacheSizes.L3 / 8 / sizeof(float));
    }

    /// <summary>Rows of A per packed block for k blocks of <paramref name="kc"/>, a multiple of MR.</summary>
    public int MC(int kc, int mr) => (int)Math.Clamp(AFloats / kc / mr * mr, mr, 1 << 16);

    /// <summary>Columns of B per packed block for k blocks of <paramref name="kc"/>, a multiple of NR.</summary>
    public int NC(int kc, int nr) => (int)Math.Clamp(BFloats / kc / nr * nr, nr, 1 << 20);
}
