using Nabla.Autograd;

namespace Nabla.Quantization;

/// <summary>
/// A weight matrix (rows = output features, columns = input features, as <see cref="NN.Linear"/> keeps it) held
/// in packed quantised blocks along each row, so a matmul reads the blocks in place and dequantises them in
/// registers (<see cref="QuantizedKernels"/>). Q8_0/Q4_0 rows are ggml blocks back to back (the bytes a GGUF file
/// holds); an NF4 row is its packed nibbles, with one float absmax per 64 values in <see cref="Absmax"/>.
/// <para>Why a matrix type of its own rather than a sub-byte dtype of <see cref="Tensor"/>: no op other than a
/// matmul (and an embedding row lookup) reads quantised weights, and a block format is not addressable per element
/// (a value needs its block's scale), so strides, views and autograd over it would be machinery with no user. The
/// arrays are pinned, so kernels take their addresses without copying.</para>
/// </summary>
public sealed class QuantizedMatrix
{
    public QuantizationFormat Format { get; }
    public int Rows { get; }
    public int Columns { get; }
    /// <summary>The packed blocks, row after row (<see cref="RowBytes"/> each).</summary>
    public byte[] Data { get; }
    /// <summary>NF4 only: the absmax of each 64-value block, row after row (the scales the kernels use; after double
    /// quantisation, its dequantised values).</summary>
    public float[]? Absmax { get; }
    /// <summary>NF4 only, when the scales were double-quantised: what a checkpoint stores instead of <see cref="Absmax"/>.</summary>
    public Nf4.QuantizedScales? QuantizedAbsmax { get; }

    public int RowBytes => RowBytesOf(Format, Columns);
    public int BlocksPerRow => Columns / Format.BlockSize();
    /// <summary>Bytes a matmul streams: the blocks, plus the NF4 scales.</summary>
    public long ByteCount => Data.LongLength + (Absmax?.LongLength ?? 0) * 4;

    public static int RowBytesOf(QuantizationFormat format, int columns) =>
        format == QuantizationFormat.Nf4 ? columns / 2 : checked((int)GgmlBlocks.ByteCount(format, columns));

    private QuantizedMatrix(QuantizationFormat format, int rows, int columns, byte[] data, float[]? absmax, Nf4.QuantizedScales? quantizedAbsmax)
    {
        Format = format;
        Rows = rows;
        Columns = columns;
        Data = data;
        Absmax = absmax;
        QuantizedAbsmax = quantizedAbsmax;
    }

    /// <summary>Quantises a float (rows, columns) weight; columns must be a multiple of the format's block (32, or 64 for NF4).</summary>
    public static QuantizedMatrix Quantize(Tensor weight, QuantizationFormat format, bool doubleQuantizeScales = false)
    {
        if (weight.Rank != 2) throw new ArgumentException($"Quantising needs a 2-D weight (rows, columns), got {weight.ShapeString}.");
        int rows = weight.Size(0), columns = weight.Size(1);
        CheckColumns(format, columns, $"a weight of shape {weight.ShapeString}");
        if (doubleQuantizeScales && format != QuantizationFormat.Nf4) throw new ArgumentException("Double quantisation of the scales is an NF4 option.");
        float[] values;
        using (GradMode.NoGrad()) values = weight.Contiguous().ToArray();
        var data = GC.AllocateUninitializedArray<byte>(checked(rows * RowBytesOf(format, columns)), pinned: true);
        if (format != QuantizationFormat.Nf4)
        {
            GgmlBlocks.Quantize(format, values, data);
            return new QuantizedMatrix(format, rows, columns, data, null, null);
        }
        var absmax = GC.AllocateUninitializedArray<float>(values.Length / Nf4.BlockSize, pinned: true);
        Nf4.Quantize(values, data, absmax);
        if (!doubleQuantizeScales) return new QuantizedMatrix(format, rows, columns, data, absmax, null);
        var quantized = Nf4.QuantizeScales(absmax);
        quantized.Dequantize().CopyTo(absmax.AsSpan());
        return new QuantizedMatrix(format, rows, columns, data, absmax, quantized);
    }

    /// <summary>A matrix over stored bytes (a checkpoint's): sizes are checked, the arrays copied into pinned memory.
    /// For NF4 give either <paramref name="absmax"/> or <paramref name="quantizedAbsmax"/>.</summary>
    public static QuantizedMatrix FromBlocks(QuantizationFormat format, int rows, int columns, ReadOnlySpan<byte> data,
        float[]? absmax = null, Nf4.QuantizedScales? quantizedAbsmax = null)
    {
        if (rows <= 0) throw new ArgumentException($"A quantised matrix needs at least one row, got {rows}.");
        CheckColumns(format, columns, $"a {rows}×{columns} matrix");
        long expected = (long)rows * RowBytesOf(format, columns);
        if (data.Length != expected) throw new ArgumentException($"a {rows}×{columns} {format.Name()} matrix takes {expected} bytes, not {data.Length}.");
        var pinned = GC.AllocateUninitializedArray<byte>(data.Length, pinned: true);
        data.CopyTo(pinned);
        if (format != QuantizationFormat.Nf4) return new QuantizedMatrix(format, rows, columns, pinned, null, null);
        int blocks = rows * columns / Nf4.BlockSize;
        if (quantizedAbsmax != null)
        {
            int scaleBlocks = (blocks + Nf4.ScaleBlockSize - 1) / Nf4.ScaleBlockSize;
            if (quantizedAbsmax.Codes.Length != blocks || quantizedAbsmax.BlockScales.Length != scaleBlocks)
                throw new ArgumentException($"a {rows}×{columns} NF4 matrix has {blocks} blocks ({scaleBlocks} scale blocks), but its double-quantised absmax holds {quantizedAbsmax.Codes.Length} codes and {quantizedAbsmax.BlockScales.Length} scales.");
            absmax = quantizedAbsmax.Dequantize();
        }
        if (absmax == null || absmax.Length != blocks)
            throw new ArgumentException($"a {rows}×{columns} NF4 matrix has {blocks} blocks, so needs {blocks} absmax values, not {absmax?.Length ?? 0}.");
        var scales = GC.AllocateUninitializedArray<float>(blocks, pinned: true);
        absmax.CopyTo(scales, 0);
        return new QuantizedMatrix(format, rows, columns, pinned, scales, quantizedAbsmax);
    }

    private static void CheckColumns(QuantizationFormat format, int columns, string what)
    {
        int block = format.BlockSize();
        if (columns <= 0 || columns % block != 0)
            throw new ArgumentException($"{format.Name()} quantises rows in blocks of {block} values; {what} has rows of {columns}.");
    }

    /// <summary>Row <paramref name="row"/>'s values (Columns of them) into <paramref name="values"/>.</summary>
    public void DequantizeRow(int row, Span<float> values)
    {
        var bytes = Data.AsSpan(row * RowBytes, RowBytes);
        if (Format == QuantizationFormat.Nf4) Nf4.Dequantize(bytes, Absmax.AsSpan(row * BlocksPerRow, BlocksPerRow), values[..Columns]);
        else GgmlBlocks.Dequantize(Format, bytes, values[..Columns]);
    }

    /// <summary>The whole matrix in float (rows, columns): for tests and inspection; the kernels never do this.</summary>
    public Tensor Dequantize()
    {
        var values = new float[(long)Rows * Columns];
        for (int r = 0; r < Rows; r++) DequantizeRow(r, values.AsSpan(r * Columns, Columns));
        return Tensor.FromArray(values, Rows, Columns);
    }
}
