namespace Nabla.Quantization;

/// <summary>How a quantised weight matrix stores its values.</summary>
public enum QuantizationFormat
{
    /// <summary>ggml's Q8_0: blocks of 32 int8 with one half-precision scale (8.5 bits a weight).</summary>
    Q8_0,
    /// <summary>ggml's Q4_0: blocks of 32 four-bit values with one half-precision scale (4.5 bits a weight).</summary>
    Q4_0,
    /// <summary>bitsandbytes' NF4: blocks of 64 four-bit indices into the 16 NormalFloat values, one float absmax per block.</summary>
    Nf4,
}

public static class QuantizationFormats
{
    /// <summary>The name used on the command line and in checkpoint metadata: q8_0, q4_0, nf4.</summary>
    public static string Name(this QuantizationFormat format) => format switch
    {
        QuantizationFormat.Q8_0 => "q8_0",
        QuantizationFormat.Q4_0 => "q4_0",
        _ => "nf4",
    };

    public static bool TryParse(string name, out QuantizationFormat format)
    {
        foreach (var f in Enum.GetValues<QuantizationFormat>())
            if (string.Equals(f.Name(), name, StringComparison.OrdinalIgnoreCase)) { format = f; return true; }
        format = default;
        return false;
    }

    /// <summary>Values per block: the row length must be a multiple of it.</summary>
    public static int BlockSize(this QuantizationFormat format) => format == QuantizationFormat.Nf4 ? Nf4.BlockSize : GgmlBlocks.BlockSize;
}
