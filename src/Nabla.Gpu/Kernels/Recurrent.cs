using ILGPU;

namespace Nabla.Gpu.Kernels;

/// <summary>The point-wise part of one LSTM / GRU time step: one thread per (batch row, hidden unit), as the
/// reference defines it (the GEMMs around it are Gemm calls).</summary>
internal static class Recurrent
{
    private static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    public static void Lstm(Index1D index, ArrayView<float> gates, ArrayView<float> cPrev, ArrayView<float> c, ArrayView<float> h, int hidden)
    {
        int b = index / hidden, j = index % hidden;
        long g = (long)b * 4 * hidden + j;
        float i = Sigmoid(gates[g]), f = Sigmoid(gates[g + hidden]), n = MathF.Tanh(gates[g + 2 * hidden]), o = Sigmoid(gates[g + 3 * hidden]);
        gates[g] = i;
        gates[g + hidden] = f;
        gates[g + 2 * hidden] = n;
        gates[g + 3 * hidden] = o;
        float cell = f * cPrev[index] + i * n;
        c[index] = cell;
        h[index] = o * MathF.Tanh(cell);
    }

    public static void LstmBackward(Index1D index, ArrayView<float> gates, ArrayView<float> cPrev, ArrayView<float> c, ArrayView<float> dh,
        ArrayView<float> dc, ArrayView<float> dGates, ArrayView<float> dcPrev, int hidden)
    {
        int b = index / hidden, j = index % hidden;
        long row = (long)b * 4 * hidden + j;
        float i = gates[row], f = gates[row + hidden], g = gates[row + 2 * hidden], o = gates[row + 3 * hidden];
        float tanhC = MathF.Tanh(c[index]);
        float dcTotal = dc[index] + dh[index] * o * (1 - tanhC * tanhC);
        dGates[row] = dcTotal * g * i * (1 - i);
        dGates[row + hidden] = dcTotal * cPrev[index] * f * (1 - f);
        dGates[row + 2 * hidden] = dcTotal * i * (1 - g * g);
        dGates[row + 3 * hidden] = dh[index] * tanhC * o * (1 - o);
        dcPrev[index] = dcTotal * f;
    }

    public static void Gru(Index1D index, ArrayView<float> inputGates, ArrayView<float> hiddenGates, ArrayView<float> hPrev, ArrayView<float> h, int hidden)
    {
        int b = index / hidden, j = index % hidden;
        long row = (long)b * 3 * hidden + j;
        float r = Sigmoid(inputGates[row] + hiddenGates[row]);
        float z = Sigmoid(inputGates[row + hidden] + hiddenGates[row + hidden]);
        float n = MathF.Tanh(inputGates[row + 2 * hidden] + r * hiddenGates[row + 2 * hidden]);
        inputGates[row] = r;
        inputGates[row + hidden] = z;
        inputGates[row + 2 * hidden] = n;
        h[index] = (1 - z) * n + z * hPrev[index];
    }

    public static void GruBackward(Index1D index, ArrayView<float> gates, ArrayView<float> hiddenGates, ArrayView<float> hPrev, ArrayView<float> dh,
        ArrayView<float> dInputGates, ArrayView<float> dHiddenGates, ArrayView<float> dhPrev, int hidden)
    {
        int b = index / hidden, j = index % hidden;
        long row = (long)b * 3 * hidden + j;
        float r = gates[row], z = gates[row + hidden], n = gates[row + 2 * hidden];
        float dnPre = dh[index] * (1 - z) * (1 - n * n);
        float dzPre = dh[index] * (hPrev[index] - n) * z * (1 - z);
        float drPre = dnPre * hiddenGates[row + 2 * hidden] * r * (1 - r);
        dInputGates[row] = drPre;
        dHiddenGates[row] = drPre;
        dInputGates[row + hidden] = dzPre;
        dHiddenGates[row + hidden] = dzPre;
        dInputGates[row + 2 * hidden] = dnPre;
        dHiddenGates[row + 2 * hidden] = dnPre * r;
        dhPrev[index] = dh[index] * z;
    }
}
