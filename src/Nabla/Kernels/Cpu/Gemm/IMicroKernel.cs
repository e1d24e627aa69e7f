namespace Nabla.Kernels.Cpu.Gemm;

/// <summary>
/// The innermost loop of the GEMM: an MR × NR tile of C held entirely in registers while it is updated with
/// kc rank-1 products of a packed A sliver (kc steps of MR floats) and a packed B sliver (kc steps of NR floats).
/// Implementations are structs so the driver, generic over the kernel, is compiled once per kernel with MR and NR
/// as constants.
/// </summary>
internal unsafe interface IMicroKernel
{
    /// <summary>Rows of the register tile (floats of A broadcast per k step).</summary>
    static abstract int MR { get; }

    /// <summary>Columns of the register tile (floats of B loaded per k step).</summary>
    static abstract int NR { get; }

    /// <summary>The cache blocking the kernel is tuned for (<see cref="GemmBlocking"/>).</summary>
    static abstract GemmBlocking TunedBlocking { get; }

    /// <summary>
    /// tile = Σ_p a[p·MR + r] · b[p·NR + j] over p in [0, kc); then writes all MR × NR values to c (row stride ldc)
    /// as tile (+ c when <paramref name="addC"/>) (+ bias[j] when <paramref name="bias"/> is not null).
    /// </summary>
    static abstract void Run(int kc, float* a, float* b, float* c, long ldc, bool addC, float* bias);
}
