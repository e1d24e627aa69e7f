using Nabla.Kernels;

namespace Nabla;

// The direct path of Conv2d (Kernels/Cpu/CpuBackend.DirectConvolution.cs): a stride-1 convolution as register tiles
// over a zero-padded copy of a few images, no im2col matrix; the input gradient is the same kernel on dy, the weight
// gradient a tile of dot products.
public static unsafe partial class F
{
    /// <summary>Set by tests and benchmarks (<see cref="ForceConvolutionPath"/>) to choose the path of every
    /// convolution of this thread that the path can handle.</summary>
    [ThreadStatic] private static ConvolutionPath t_forcedPath;

    /// <summary>Whether Conv2d takes the direct path: every convolution the direct kernels handle
    /// (<see cref="Conv2dGeometry.SuitsDirect"/>) that Winograd does not take.</summary>
    internal static bool UsesDirect(in Conv2dGeometry g) =>
        g.SuitsDirect && t_forcedPath switch
        {
            ConvolutionPath.Direct => true,
            ConvolutionPath.Auto => !UsesWinograd(g),
            _ => false,
        };

    /// <summary>Runs every convolution of this thread that <paramref name="path"/> can handle through it until disposed.</summary>
    internal static IDisposable ForceConvolutionPath(ConvolutionPath path)
    {
        var previous = t_forcedPath;
        t_forcedPath = path;
        return new ConvolutionPathScope(previous);
    }

    private sealed class ConvolutionPathScope(ConvolutionPath previous) : IDisposable
    {
        public void Dispose() => t_forcedPath = previous;
    }
}

/// <summary>Whether a dense convolution takes the direct path: by shape (Auto), never (WithoutDirect: Winograd or im2col
/// + GEMM), or wherever it can (Direct).</summary>
internal enum ConvolutionPath { Auto, WithoutDirect, Direct }
