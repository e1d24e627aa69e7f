using System.Runtime.CompilerServices;

namespace Nabla.Gpu.Kernels;

/// <summary>Four floats a thread keeps in registers (a value type without address-taking, so ILGPU's SSA
/// construction keeps it out of local memory), and the unit of the vectorised shared-memory reads of SGEMM v4.</summary>
internal struct F4(float x, float y, float z, float w)
{
    public float X = x, Y = y, Z = z, W = w;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static F4 Fma(F4 acc, float a, F4 b) =>
        new(acc.X + a * b.X, acc.Y + a * b.Y, acc.Z + a * b.Z, acc.W + a * b.W);
}
