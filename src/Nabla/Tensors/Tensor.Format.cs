using System.Globalization;
using System.Text;

namespace Nabla;

public sealed partial class Tensor
{
    /// <summary>Tensors with more elements than this print summarised (first and last 3 per dimension).</summary>
    public const int PrintThreshold = 1000;
    private const int EdgeItems = 3;

    /// <summary>PyTorch-style text: <c>tensor([[ 0.1000, -2.0000], ...], requires_grad=True)</c>.</summary>
    public override string ToString()
    {
        if (Storage.IsReleased) return $"tensor(<released>, shape={ShapeString})";
        var values = ToArray();
        bool summarize = Count > PrintThreshold;
        var shown = Shown(values, summarize);
        var format = ChooseFormat(shown, DType == DType.Int32);
        int width = shown.Count == 0 ? 1 : shown.Max(v => format(v).Length);
        var sb = new StringBuilder("tensor(");
        if (Count == 0 && Rank > 0) sb.Append("[]");
        else WriteDim(sb, values, 0, 0, width, format, summarize, indent: 7);
        var extras = new List<string>();
        if (Count == 0 && Rank > 0) extras.Add($"size={ShapeString}");
        if (DType != DType.Float32) extras.Add($"dtype={DType}");
        if (GradFn != null) extras.Add($"grad_fn={GradFn}");
        else if (RequiresGrad) extras.Add("requires_grad=True");
        foreach (var e in extras) sb.Append(", ").Append(e);
        return sb.Append(')').ToString();
    }

    private List<float> Shown(float[] values, bool summarize)
    {
        if (!summarize) return values.ToList();
        var result = new List<float>();
        Collect(values, 0, 0, result);
        return result;
    }

    private void Collect(float[] values, int dim, int offset, List<float> into)
    {
        if (dim == Rank) { into.Add(values[offset]); return; }
        int size = _shape[dim], block = 1;
        for (int d = dim + 1; d < Rank; d++) block *= _shape[d];
        foreach (var i in Indices(size, summarize: true)) Collect(values, dim + 1, offset + i * block, into);
    }

    private static IEnumerable<int> Indices(int size, bool summarize)
    {
        if (!summarize || size <= 2 * EdgeItems) { for (int i = 0; i < size; i++) yield return i; yield break; }
        for (int i = 0; i < EdgeItems; i++) yield return i;
        yield return -1; // the "..." marker
        for (int i = size - EdgeItems; i < size; i++) yield return i;
    }

    private static Func<float, string> ChooseFormat(List<float> values, bool isInt)
    {
        var inv = CultureInfo.InvariantCulture;
        if (isInt) return v => ((long)v).ToString(inv);
        var finite = values.Where(float.IsFinite).ToList();
        if (finite.Count > 0 && finite.All(v => v == MathF.Round(v)) && finite.Max(MathF.Abs) < 1e8f)
            return v => float.IsFinite(v) ? v.ToString("0", inv) + "." : Special(v);
        var nonZero = finite.Where(v => v != 0).Select(MathF.Abs).ToList();
        bool sci = nonZero.Count > 0 && (nonZero.Max() / nonZero.Min() > 1000 || nonZero.Max() > 1e8f || nonZero.Min() < 1e-4f);
        return sci
            ? v => float.IsFinite(v) ? v.ToString("0.0000e+00", inv) : Special(v)
            : v => float.IsFinite(v) ? v.ToString("0.0000", inv) : Special(v);
    }

    private static string Special(float v) => float.IsNaN(v) ? "nan" : v > 0 ? "inf" : "-inf";

    private void WriteDim(StringBuilder sb, float[] values, int dim, int offset, int width, Func<float, string> format, bool summarize, int indent)
    {
        if (dim == Rank) { sb.Append(format(values[offset]).PadLeft(width)); return; }
        int size = _shape[dim], block = 1;
        for (int d = dim + 1; d < Rank; d++) block *= _shape[d];
        sb.Append('[');
        bool first = true;
        foreach (var i in Indices(size, summarize))
        {
            if (!first)
            {
                sb.Append(',');
                if (dim == Rank - 1) sb.Append(' ');
                else sb.Append('\n', Rank - 1 - dim).Append(' ', indent + dim + 1);
            }
            first = false;
            if (i < 0) { sb.Append("..."); continue; }
            WriteDim(sb, values, dim + 1, offset + i * block, width, format, summarize, indent);
        }
        sb.Append(']');
    }
}
