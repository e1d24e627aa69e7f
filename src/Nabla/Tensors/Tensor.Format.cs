using System.Globalization;
using System.Numerics;
using System.Text;

namespace Nabla;

// Printing, following PyTorch's torch/_tensor_str.py step for step (precision 4, threshold 1000, 3 edge items,
// line width 80), so the numbers, widths, line breaks and "..." summaries come out as PyTorch prints them.
// Differences, all of naming only (tests/Nabla.Tests/Tensors/FormatParityTests.cs checks the rest against
// PyTorch's own repr): the dtype suffix uses Nabla's names (dtype=Int32, not dtype=torch.int32), an empty
// tensor's size uses Nabla's shape notation (size=[0, 3], not size=(0, 3)), and grad_fn names have no
// version suffix (<MulBackward>, not <MulBackward0>).
public sealed partial class Tensor
{
    /// <summary>Tensors with more elements than this print summarised (first and last 3 per dimension).</summary>
    public const int PrintThreshold = 1000;
    private const int EdgeItems = 3;
    private const int LineWidth = 80;
    private const int Precision = 4;

    /// <summary>PyTorch-style text: <c>tensor([[ 0.1000, -2.0000], ...], requires_grad=True)</c>.</summary>
    public override string ToString()
    {
        if (Storage.IsReleased) return $"tensor(<released>, shape={ShapeString})";
        const string prefix = "tensor(";
        int indent = prefix.Length;
        var suffixes = new List<string>();
        string body;
        if (Count == 0)
        {
            if (Rank != 1) suffixes.Add($"size={ShapeString}");
            if (DType != DType.Float32) suffixes.Add($"dtype={DType}");
            body = "[]";
        }
        else
        {
            if (DType != DType.Float32) suffixes.Add($"dtype={DType}");
            bool isInt = DType == DType.Int32;
            double[] values = isInt ? ToIntArray().Select(i => (double)i).ToArray() : ToArray().Select(f => (double)f).ToArray();
            bool summarize = Count > PrintThreshold;
            var formatter = new Formatter(summarize ? Summarized(values) : values, floating: !isInt);
            body = Rank == 0 ? formatter.Format(values[0]) : TensorString(values, 0, 0, indent, summarize, formatter);
        }
        if (GradFn != null) suffixes.Add($"grad_fn={GradFn}");
        else if (RequiresGrad) suffixes.Add("requires_grad=True");
        return AddSuffixes(prefix + body, suffixes, indent);
    }

    private static string AddSuffixes(string tensorString, List<string> suffixes, int indent)
    {
        var sb = new StringBuilder(tensorString);
        int lastLineLength = tensorString.Length - tensorString.LastIndexOf('\n') + 1;
        foreach (var suffix in suffixes)
        {
            if (lastLineLength + suffix.Length + 2 > LineWidth)
            {
                sb.Append(",\n").Append(' ', indent).Append(suffix);
                lastLineLength = indent + suffix.Length;
            }
            else
            {
                sb.Append(", ").Append(suffix);
                lastLineLength += suffix.Length + 2;
            }
        }
        return sb.Append(')').ToString();
    }

    /// <summary>The values a summarised print shows (edge items of every dimension), which set the format.</summary>
    private List<double> Summarized(double[] values)
    {
        var result = new List<double>();
        Collect(values, 0, 0, result);
        return result;
    }

    private void Collect(double[] values, int dim, int offset, List<double> into)
    {
        if (dim == Rank) { into.Add(values[offset]); return; }
        int block = Block(dim);
        foreach (var i in Indices(_shape[dim], summarize: true))
            if (i >= 0) Collect(values, dim + 1, offset + i * block, into);
    }

    private int Block(int dim)
    {
        int block = 1;
        for (int d = dim + 1; d < Rank; d++) block *= _shape[d];
        return block;
    }

    private static IEnumerable<int> Indices(int size, bool summarize)
    {
        if (!summarize || size <= 2 * EdgeItems) { for (int i = 0; i < size; i++) yield return i; yield break; }
        for (int i = 0; i < EdgeItems; i++) yield return i;
        yield return -1; // the "..." marker
        for (int i = size - EdgeItems; i < size; i++) yield return i;
    }

    private string TensorString(double[] values, int dim, int offset, int indent, bool summarize, Formatter formatter)
    {
        int block = Block(dim);
        if (dim == Rank - 1)
        {
            // One row: as many elements per line as fit in the line width.
            var data = Indices(_shape[dim], summarize).Select(i => i < 0 ? " ..." : formatter.Format(values[offset + i])).ToList();
            int perLine = Math.Max(1, (LineWidth - indent) / (formatter.Width + 2));
            var lines = data.Chunk(perLine).Select(line => string.Join(", ", line));
            return "[" + string.Join(",\n" + new string(' ', indent + 1), lines) + "]";
        }
        var slices = Indices(_shape[dim], summarize)
            .Select(i => i < 0 ? "..." : TensorString(values, dim + 1, offset + i * block, indent + 1, summarize, formatter));
        return "[" + string.Join("," + new string('\n', Rank - 1 - dim) + new string(' ', indent + 1), slices) + "]";
    }

    /// <summary>PyTorch's _Formatter: integer mode, fixed or scientific notation, and the common width, chosen
    /// from the nonzero finite values.</summary>
    private sealed class Formatter
    {
        private readonly bool _floating, _intMode = true, _sciMode;
        public int Width { get; } = 1;

        public Formatter(IEnumerable<double> values, bool floating)
        {
            _floating = floating;
            if (!floating)
            {
                foreach (var v in values) Width = Math.Max(Width, ((long)v).ToString(CultureInfo.InvariantCulture).Length);
                return;
            }
            var nonzero = values.Where(v => double.IsFinite(v) && v != 0).ToList();
            if (nonzero.Count == 0) return;
            double min = nonzero.Min(Math.Abs), max = nonzero.Max(Math.Abs);
            _intMode = nonzero.All(v => v == Math.Ceiling(v));
            if (_intMode)
            {
                _sciMode = max / min > 1000 || max > 1e8;
                foreach (var v in nonzero) Width = Math.Max(Width, _sciMode ? Scientific(v).Length : Fixed(v, 0).Length + 1);
            }
            else
            {
                _sciMode = max / min > 1000 || max > 1e8 || min < 1e-4;
                foreach (var v in nonzero) Width = Math.Max(Width, _sciMode ? Scientific(v).Length : Fixed(v, Precision).Length);
            }
        }

        public string Format(double v)
        {
            string s;
            if (!_floating) s = ((long)v).ToString(CultureInfo.InvariantCulture);
            else if (_sciMode) s = Scientific(v);
            else if (_intMode) s = double.IsFinite(v) ? Fixed(v, 0) + "." : Fixed(v, 0);
            else s = Fixed(v, Precision);
            return s.Length >= Width ? s : new string(' ', Width - s.Length) + s;
        }
    }

    // Python's "{:.4f}" and "{:.4e}": correctly rounded from the exact binary value, ties to even (.NET's own
    // formatting rounds ties away from zero, so 0.03125 would print 0.0313 instead of PyTorch's 0.0312).

    private static string NonFinite(double v) => double.IsNaN(v) ? "nan" : v > 0 ? "inf" : "-inf";

    private static string Sign(double v) => v < 0 || (v == 0 && double.IsNegative(v)) ? "-" : "";

    internal static string Fixed(double v, int decimals)
    {
        if (!double.IsFinite(v)) return NonFinite(v);
        var digits = RoundScaled(Math.Abs(v), decimals).ToString(CultureInfo.InvariantCulture);
        if (decimals == 0) return Sign(v) + digits;
        digits = digits.PadLeft(decimals + 1, '0');
        return Sign(v) + digits[..^decimals] + "." + digits[^decimals..];
    }

    internal static string Scientific(double v, int decimals = Precision)
    {
        if (!double.IsFinite(v)) return NonFinite(v);
        double a = Math.Abs(v);
        int exponent = 0;
        BigInteger n = 0;
        if (a != 0)
        {
            exponent = (int)Math.Floor(Math.Log10(a));
            var low = BigInteger.Pow(10, decimals);
            for (int tries = 0; tries < 4; tries++)
            {
                n = RoundScaled(a, decimals - exponent);
                if (n >= low * 10) exponent++;
                else if (n < low) exponent--;
                else break;
            }
        }
        var digits = n.ToString(CultureInfo.InvariantCulture).PadLeft(decimals + 1, '0');
        var mantissa = decimals == 0 ? digits : digits[..1] + "." + digits[1..];
        return Sign(v) + mantissa + "e" + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
    }

    /// <summary>round(a · 10^k) for a finite a ≥ 0, exactly, ties to even.</summary>
    private static BigInteger RoundScaled(double a, int k)
    {
        long bits = BitConverter.DoubleToInt64Bits(a);
        int rawExponent = (int)((bits >> 52) & 0x7FF);
        long fraction = bits & 0xFFFFFFFFFFFFFL;
        BigInteger mantissa = rawExponent == 0 ? fraction : fraction | (1L << 52);
        int e = rawExponent == 0 ? -1074 : rawExponent - 1075; // a = mantissa · 2^e
        BigInteger num = mantissa, den = BigInteger.One;
        if (e >= 0) num <<= e; else den <<= -e;
        if (k >= 0) num *= BigInteger.Pow(10, k); else den *= BigInteger.Pow(10, -k);
        var q = BigInteger.DivRem(num, den, out var rem);
        int cmp = (rem * 2).CompareTo(den);
        if (cmp > 0 || (cmp == 0 && !q.IsEven)) q += 1;
        return q;
    }
}
