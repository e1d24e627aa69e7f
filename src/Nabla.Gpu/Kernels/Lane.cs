using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Algorithms;
using Nabla.Kernels.Cpu;

namespace Nabla.Gpu.Kernels;

/// <summary>
/// One float lane for the GPU: the <see cref="IVec{TSelf}"/> that the element-wise functions' vector forms (the ones
/// the CPU backend runs) are written against, so a kernel thread evaluates a function in float as the CPU does
/// (GPUs run double precision at a fraction of the float rate). Like the CPU's scalar lane <see cref="V1"/>, but with
/// ILGPU's float math and bit casts; Load and Store are never called in a kernel (kernels read ArrayViews).
/// </summary>
internal unsafe struct Lane : IVec<Lane>
{
    public float V;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Lane(float v) => V = v;
    public static int Count => 1;
    public static Lane Load(float* p) => new(*p);
    public static void Store(float* p, Lane v) => *p = v.V;
    public static Lane Splat(float v) => new(v);
    public static Lane operator +(Lane a, Lane b) => new(a.V + b.V);
    public static Lane operator -(Lane a, Lane b) => new(a.V - b.V);
    public static Lane operator *(Lane a, Lane b) => new(a.V * b.V);
    public static Lane operator /(Lane a, Lane b) => new(a.V / b.V);
    public static Lane operator -(Lane a) => new(-a.V);
    // The PTX compiler contracts a·b + c into one fused multiply-add.
    public static Lane Fma(Lane a, Lane b, Lane c) => new(a.V * b.V + c.V);
    public static void AddProduct(ref Lane acc, Lane a, Lane b) => acc.V = a.V * b.V + acc.V;
    public static Lane Max(Lane a, Lane b) => new(XMath.Max(a.V, b.V));
    public static Lane Min(Lane a, Lane b) => new(XMath.Min(a.V, b.V));
    public static Lane Exp(Lane a) => new(XMath.Exp(a.V));
    public static Lane Log(Lane a) => new(XMath.Log(a.V));
    public static Lane Sqrt(Lane a) => new(XMath.Sqrt(a.V));
    public static Lane Abs(Lane a) => new(XMath.Abs(a.V));
    public static Lane Greater(Lane a, Lane b) => Mask(a.V > b.V);
    public static Lane Less(Lane a, Lane b) => Mask(a.V < b.V);
    public static Lane Equal(Lane a, Lane b) => Mask(a.V == b.V);
    public static Lane Select(Lane mask, Lane a, Lane b) => Interop.FloatAsInt(mask.V) != 0 ? a : b;
    public static float SumAcross(Lane a) => a.V;
    public static float MaxAcross(Lane a) => a.V;

    /// <summary>All bits set (true) or none, as the vector comparisons return.</summary>
    private static Lane Mask(bool on) => new(Interop.IntAsFloat(on ? uint.MaxValue : 0u));
}
