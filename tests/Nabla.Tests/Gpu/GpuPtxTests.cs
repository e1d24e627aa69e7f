using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Nabla.Gpu;
using Nabla.Kernels;
using Xunit.Abstractions;

namespace Nabla.Tests.Gpu;

/// <summary>
/// The CPU accelerator runs kernels as .NET code, so it would accept constructs ILGPU cannot translate for a GPU.
/// This compiles every kernel in Nabla.Gpu.Kernels (each generic one for every <see cref="IUnaryFunction"/>) to PTX
/// with ILGPU's PTX backend, which needs no GPU or driver, for the Ampere and Hopper architectures: what runs on
/// a GPU is at least what ILGPU can compile. (Whether the PTX is correct on the GPU is for the benchmark run.)
/// </summary>
public sealed class GpuPtxTests(ITestOutputHelper output)
{
    public static IEnumerable<MethodInfo> Kernels()
    {
        var unary = typeof(IUnaryFunction).Assembly.GetTypes().Where(t => t.IsValueType && typeof(IUnaryFunction).IsAssignableFrom(t)).ToArray();
        foreach (var type in typeof(GpuBackend).Assembly.GetTypes().Where(t => t.Namespace == "Nabla.Gpu.Kernels" && t.IsAbstract && t.IsSealed))
            foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
            {
                if (method.ReturnType != typeof(void) || !method.GetParameters().Any(p => p.ParameterType.IsGenericType &&
                        p.ParameterType.GetGenericTypeDefinition() == typeof(ArrayView<>)))
                    continue; // helpers, not kernels
                if (method.IsGenericMethodDefinition)
                    foreach (var f in unary) yield return method.MakeGenericMethod(f);
                else yield return method;
            }
    }

    [Theory]
    [InlineData(8, 0)]
    [InlineData(9, 0)]
    public void EveryKernelCompilesToPtx(int major, int minor)
    {
        using var context = Context.Create(b => b.EnableAlgorithms());
        using var backend = new PTXBackend(context, new CudaArchitecture(major, minor), CudaInstructionSet.ISA_80, null!);
        var kernels = Kernels().ToArray();
        Assert.True(kernels.Length > 30, $"found only {kernels.Length} kernels");
        var failures = new List<string>();
        foreach (var kernel in kernels)
        {
            bool implicitlyGrouped = kernel.GetParameters()[0].ParameterType == typeof(Index1D);
            var entry = implicitlyGrouped ? EntryPointDescription.FromImplicitlyGroupedKernel(kernel) : EntryPointDescription.FromExplicitlyGroupedKernel(kernel);
            try
            {
                var compiled = (PTXCompiledKernel)backend.Compile(entry, KernelSpecialization.Empty);
                Assert.Contains(".entry", compiled.PTXAssembly);
            }
            catch (Exception e)
            {
                failures.Add($"{kernel.DeclaringType!.Name}.{kernel.Name}{(kernel.IsGenericMethod ? "<" + kernel.GetGenericArguments()[0].Name + ">" : "")}: {e.GetType().Name}: {e.Message}");
            }
        }
        output.WriteLine($"{kernels.Length - failures.Count} of {kernels.Length} kernels compiled to PTX for sm_{major}{minor}");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>What the v4 SGEMM claims about itself, checked in its PTX: the F4 reads of shared memory are single
    /// 128-bit loads, and the 64 accumulators stay in registers (no local-memory arrays).</summary>
    [Fact]
    public void SgemmV4ReadsSharedMemoryAsVectorsAndKeepsAccumulatorsInRegisters()
    {
        using var context = Context.Create(b => b.EnableAlgorithms());
        using var backend = new PTXBackend(context, CudaArchitecture.SM_80, CudaInstructionSet.ISA_80, null!);
        var method = Kernels().Single(m => m.Name == "V4WideTiles");
        var ptx = ((PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(method), KernelSpecialization.Empty)).PTXAssembly;
        output.WriteLine($"SGEMM v4: {ptx.Split('\n').Length} PTX lines, {Count(ptx, "ld.shared.v4.f32")} ld.shared.v4.f32, " +
                         $"{Count(ptx, "fma.rn.f32")} fma.rn.f32, {Count(ptx, ".local")} .local");
        Assert.DoesNotContain(".local", ptx);
        Assert.Contains("ld.shared.v4.f32", ptx);
    }

    private static int Count(string text, string what)
    {
        int count = 0;
        for (int at = text.IndexOf(what, StringComparison.Ordinal); at >= 0; at = text.IndexOf(what, at + 1, StringComparison.Ordinal)) count++;
        return count;
    }
}
