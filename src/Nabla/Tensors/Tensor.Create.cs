using Nabla.Kernels;

namespace Nabla;

public sealed unsafe partial class Tensor
{
    public static Tensor Zeros(params int[] shape) => Full(0f, shape);
    public static Tensor Ones(params int[] shape) => Full(1f, shape);
    public static Tensor Full(float value, params int[] shape) => Full(value, shape, Device.Cpu);

    public static Tensor Zeros(int[] shape, Device device) => Full(0f, shape, device);
    public static Tensor Ones(int[] shape, Device device) => Full(1f, shape, device);

    /// <summary>A tensor of <paramref name="shape"/> on <paramref name="device"/>, every element <paramref name="value"/>.</summary>
    public static Tensor Full(float value, int[] shape, Device device)
    {
        var t = Empty(shape.ToArray(), DType.Float32, device);
        if (t.Count > 0) device.Kernels.Fill(t.Data, value, t.Count);
        return t;
    }

    /// <summary>Zeros of <paramref name="t"/>'s shape, on its device.</summary>
    public static Tensor ZerosLike(Tensor t) => Zeros(t._shape, t.Device);
    /// <summary>Ones of <paramref name="t"/>'s shape, on its device.</summary>
    public static Tensor OnesLike(Tensor t) => Ones(t._shape, t.Device);

    /// <summary>A 0-dimensional tensor holding <paramref name="value"/> (on the CPU unless <paramref name="device"/> says otherwise).</summary>
    public static Tensor Scalar(float value, Device? device = null) => Full(value, [], device ?? Device.Cpu);

    /// <summary>A tensor holding a copy of <paramref name="data"/> (row-major) in <paramref name="shape"/>
    /// (default: 1-D).</summary>
    public static Tensor FromArray(float[] data, params int[] shape)
    {
        if (shape.Length == 0) shape = [data.Length];
        CheckCount(data.Length, shape);
        var t = Empty(shape.ToArray());
        data.AsSpan().CopyTo(new Span<float>(t.Data, t.Count));
        return t;
    }

    /// <summary>An Int32 (index) tensor: class labels, token ids, gather indices.</summary>
    public static Tensor FromArray(int[] data, params int[] shape)
    {
        if (shape.Length == 0) shape = [data.Length];
        CheckCount(data.Length, shape);
        var t = Empty(shape.ToArray(), DType.Int32);
        data.AsSpan().CopyTo(new Span<int>(t.IntData, t.Count));
        return t;
    }

    public static Tensor FromArray(float[,] data)
    {
        int r = data.GetLength(0), c = data.GetLength(1);
        var t = Empty([r, c]);
        fixed (float* p = data) Buffer.MemoryCopy(p, t.Data, (long)r * c * 4, (long)r * c * 4);
        return t;
    }

    private static void CheckCount(int length, int[] shape)
    {
        long n = ShapeMath.Count(shape);
        if (n != length)
            throw new ArgumentException($"{length} values cannot fill shape {ShapeMath.Format(shape)} ({n} elements).");
    }

    /// <summary>0, 1, ..., n-1 as floats.</summary>
    public static Tensor Arange(int n) => Arange(0, n);

    public static Tensor Arange(float start, float end, float step = 1f)
    {
        if (step == 0) throw new ArgumentException("Arange step must not be zero.");
        int n = Math.Max(0, (int)Math.Ceiling((end - start) / step));
        var t = Empty([n]);
        for (int i = 0; i < n; i++) t.Data[i] = start + i * step;
        return t;
    }

    /// <summary>Uniform samples in [0, 1).</summary>
    public static Tensor Rand(params int[] shape) => Rand(Generator.Default, shape);

    public static Tensor Rand(Generator generator, params int[] shape) => Uniform(generator, 0, 1, shape);

    /// <summary>Uniform samples in [low, high).</summary>
    public static Tensor Uniform(Generator generator, float low, float high, params int[] shape)
    {
        var t = Empty(shape.ToArray());
        float* p = t.Data;
        for (int i = 0; i < t.Count; i++) p[i] = low + (high - low) * generator.NextFloat();
        return t;
    }

    /// <summary>Standard normal samples.</summary>
    public static Tensor Randn(params int[] shape) => Normal(Generator.Default, 0, 1, shape);

    public static Tensor Randn(Generator generator, params int[] shape) => Normal(generator, 0, 1, shape);

    public static Tensor Normal(Generator generator, float mean, float std, params int[] shape)
    {
        var t = Empty(shape.ToArray());
        float* p = t.Data;
        for (int i = 0; i < t.Count; i++) p[i] = (float)(mean + std * generator.NextNormal());
        return t;
    }

    /// <summary>Random integers in [low, high) as an Int32 tensor.</summary>
    public static Tensor RandInt(Generator generator, int low, int high, params int[] shape)
    {
        var t = Empty(shape.ToArray(), DType.Int32);
        int* p = t.IntData;
        for (int i = 0; i < t.Count; i++) p[i] = low + generator.NextInt(high - low);
        return t;
    }

    /// <summary>A contiguous copy of this tensor (on its device), cut from the graph if it is a leaf but recording the
    /// copy otherwise (gradients flow through Clone like any op).</summary>
    public Tensor Clone()
    {
        var y = Empty(_shape.ToArray(), DType, Device);
        if (DType.IsHalfPrecision())
        {
            CopyHalfPrecisionBitsTo(y.HalfPrecisionBits); // storage only: never part of a graph
            return y;
        }
        if (Count > 0)
        {
            KernelsFor("Clone", this).Copy(Data, _strides, y.Data, y._strides, _shape, accumulate: false);
            GC.KeepAlive(this);
        }
        if (Autograd.GradMode.Needed(this)) Autograd.NodeExtensions.Record(y, "Clone", [this], g => [g]);
        return y;
    }

    /// <summary>The same values as Float32 (index tensors become floats, BFloat16/Float16 widen exactly), Int32
    /// (floats truncate), or BFloat16/Float16 (rounded to nearest, ties to even, as PyTorch rounds), on the same device
    /// (16-bit tensors live on the CPU).</summary>
    public Tensor To(DType dtype)
    {
        if (dtype == DType) return this;
        if (DType.IsHalfPrecision()) return WidenHalfPrecision().To(dtype);
        if (dtype.IsHalfPrecision()) return (DType == DType.Float32 ? this : To(DType.Float32)).NarrowToHalfPrecision(dtype);
        if (dtype == DType.Float32) return FromArray(ToArray(), _shape.ToArray()).To(Device);
        if (dtype == DType.Int32) return FromArray(ToIntArray(), _shape.ToArray()).To(Device);
        throw new NotSupportedException($"Conversion to {dtype} is not supported yet.");
    }
}
