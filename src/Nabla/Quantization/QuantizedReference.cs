namespace Nabla.Quantization;

/// <summary>
/// The naive definitions the fast kernels of <see cref="QuantizedKernels"/> are tested against: plain loops over
/// the reference codecs (<see cref="GgmlBlocks"/>, <see cref="Nf4"/>), slow and obviously right.
/// </summary>
public static class QuantizedReference
{
    /// <summary>The float path's definition: y[i, r] = Σ_k dequantise(W)[r, k]·x[i, k] + bias[r].</summary>
    public static float[] MatMulFloat(QuantizedMatrix w, float[] x, int m, float[]? bias)
    {
        var y = new float[m * w.Rows];
        var row = new float[w.Columns];
        for (int r = 0; r < w.Rows; r++)
        {
            w.DequantizeRow(r, row);
            for (int i = 0; i < m; i++)
            {
                double sum = 0;
                for (int k = 0; k < w.Columns; k++) sum += (double)row[k] * x[i * w.Columns + k];
                y[i * w.Rows + r] = (float)sum + (bias?[r] ?? 0);
            }
        }
        return y;
    }

    /// <summary>The input gradient's definition: gradX[i, k] = Σ_r gradY[i, r]·dequantise(W)[r, k].</summary>
    public static float[] InputGradient(QuantizedMatrix w, float[] gradY, int m)
    {
        var weight = new float[w.Rows][];
        for (int r = 0; r < w.Rows; r++) w.DequantizeRow(r, weight[r] = new float[w.Columns]);
        var gradX = new float[m * w.Columns];
        for (int i = 0; i < m; i++)
            for (int k = 0; k < w.Columns; k++)
            {
                double sum = 0;
                for (int r = 0; r < w.Rows; r++) sum += (double)gradY[i * w.Rows + r] * weight[r][k];
                gradX[i * w.Columns + k] = (float)sum;
            }
        return gradX;
    }

    /// <summary>The int8 path's definition (ggml's vec_dot_q8_0_q8_0 / q4_0_q8_0): each row of x quantised to Q8_0
    /// blocks; y[i, r] = Σ_blocks d_w·d_x·Σ_j q_w[j]·q_x[j] + bias[r], the inner sums exact in integers.</summary>
    public static float[] MatMulInt8(QuantizedMatrix w, float[] x, int m, float[]? bias)
    {
        int K = w.Columns, blocks = w.BlocksPerRow, blockBytes = GgmlBlocks.BlockBytes(w.Format);
        var y = new float[m * w.Rows];
        var xBlocks = new byte[m][];
        for (int i = 0; i < m; i++) xBlocks[i] = GgmlBlocks.Quantize(QuantizationFormat.Q8_0, x.AsSpan(i * K, K));
        for (int r = 0; r < w.Rows; r++)
            for (int i = 0; i < m; i++)
            {
                double sum = 0;
                for (int b = 0; b < blocks; b++)
                {
                    var wBlock = w.Data.AsSpan(r * w.RowBytes + b * blockBytes, blockBytes);
                    var xBlock = xBlocks[i].AsSpan(b * GgmlBlocks.Q8_0BlockBytes, GgmlBlocks.Q8_0BlockBytes);
                    long dot = 0;
                    for (int j = 0; j < GgmlBlocks.BlockSize; j++) dot += StoredInteger(w.Format, wBlock, j) * StoredInteger(QuantizationFormat.Q8_0, xBlock, j);
                    sum += (double)GgmlBlocks.Scale(wBlock) * GgmlBlocks.Scale(xBlock) * dot;
                }
                y[i * w.Rows + r] = (float)sum + (bias?[r] ?? 0);
            }
        return y;
    }

    /// <summary>Element j of a block as the integer it stores: q (Q8_0), or nibble − 8 (Q4_0: elements 0–15 in the
    /// low nibbles, 16–31 in the high ones).</summary>
    private static int StoredInteger(QuantizationFormat format, ReadOnlySpan<byte> block, int j) => format == QuantizationFormat.Q8_0
        ? (sbyte)block[2 + j]
        : (j < 16 ? block[2 + j] & 0x0F : block[2 + j - 16] >> 4) - 8;
}
