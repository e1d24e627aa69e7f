using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

// Element-wise arithmetic with broadcasting, and element-wise math. Each op: forward through the kernel
// backend, backward beside it.
public sealed unsafe partial class Tensor
{
    // ---------------------------------------------------------------- broadcasting helpers

    /// <summary>The shape two tensors broadcast to (NumPy rules), or an error naming both shapes.</summary>
    internal static int[] BroadcastShape(ReadOnlySpan<int> a, ReadOnlySpan<int> b, string op)
    {
        int rank = Math.Max(a.Length, b.Length);
        var shape = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i - (rank - a.Length) >= 0 ? a[i - (rank - a.Length)] : 1;
            int db = i - (rank - b.Length) >= 0 ? b[i - (rank - b.Length)] : 1;
            if (da != db && da != 1 && db != 1)
                throw new ArgumentException($"{op}: shapes {ShapeMath.Format(a)} and {ShapeMath.Format(b)} cannot be broadcast together (dimension {i}: {da} vs {db}).");
            shape[i] = da == 1 ? db : da;
        }
        return shape;
    }

    /// <summary>Strides that read this tensor as if expanded to <paramref name="shape"/> (0 on broadcast dimensions).</summary>
    internal int[] BroadcastStrides(ReadOnlySpan<int> shape)
    {
        var strides = new int[shape.Length];
        int lead = shape.Length - Rank;
        for (int i = lead; i < shape.Length; i++)
            strides[i] = _shape[i - lead] == 1 && shape[i] != 1 ? 0 : _strides[i - lead];
        return strides;
    }

    /// <summary>Sums a broadcast gradient back down to <paramref name="shape"/> (the inverse of broadcasting).</summary>
    internal Tensor SumTo(ReadOnlySpan<int> shape)
    {
        if (_shape.AsSpan().SequenceEqual(shape)) return this;
        int lead = Rank - shape.Length;
        var dims = new List<int>();
        for (int i = 0; i < Rank; i++)
            if (i < lead || (shape[i - lead] == 1 && _shape[i] != 1)) dims.Add(i);
        var summed = dims.Count == 0 ? this : Sum(dims.ToArray(), keepDim: true);
        return summed.Reshape(shape.ToArray());
    }

    internal void RequireFloat(string op)
    {
        if (DType != DType.Float32)
            throw new InvalidOperationException($"{op} needs Float32 tensors; got {DType} of shape {ShapeString}. Convert with To(DType.Float32).");
    }

    private static Tensor Binary(BinaryOp op, Tensor a, Tensor b)
    {
        a.RequireFloat(op.ToString());
        b.RequireFloat(op.ToString());
        var shape = BroadcastShape(a._shape, b._shape, op.ToString());
        var kernels = KernelsFor(op.ToString(), a, b);
        var y = Empty(shape, DType.Float32, a.Device);
        if (y.Count > 0) kernels.Binary(op, a.Data, a.BroadcastStrides(shape), b.Data, b.BroadcastStrides(shape), y.Data, shape);
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        return y;
    }

    // ---------------------------------------------------------------- binary arithmetic

    public Tensor Add(Tensor other)
    {
        var y = Binary(BinaryOp.Add, this, other);
        if (GradMode.Needed(this, other))
        {
            var (a, b) = (this, other);
            y.Record("Add", [a, b], g => [g.SumTo(a._shape), g.SumTo(b._shape)]);
        }
        return y;
    }

    public Tensor Sub(Tensor other)
    {
        var y = Binary(BinaryOp.Sub, this, other);
        if (GradMode.Needed(this, other))
        {
            var (a, b) = (this, other);
            y.Record("Sub", [a, b], g => [g.SumTo(a._shape), b.RequiresGrad ? g.Neg().SumTo(b._shape) : null]);
        }
        return y;
    }

    public Tensor Mul(Tensor other)
    {
        var y = Binary(BinaryOp.Mul, this, other);
        if (GradMode.Needed(this, other))
        {
            var (a, b) = (this, other);
            y.Record("Mul", [a, b], g => [
                a.RequiresGrad ? g.Mul(b).SumTo(a._shape) : null,
                b.RequiresGrad ? g.Mul(a).SumTo(b._shape) : null]);
        }
        return y;
    }

    public Tensor Div(Tensor other)
    {
        var y = Binary(BinaryOp.Div, this, other);
        if (GradMode.Needed(this, other))
        {
            var (a, b) = (this, other);
            // d(a/b)/da = 1/b, d(a/b)/db = -a/b² = -y/b
            y.Record("Div", [a, b], g => [
                a.RequiresGrad ? g.Div(b).SumTo(a._shape) : null,
                b.RequiresGrad ? g.Mul(y).Div(b).Neg().SumTo(b._shape) : null]);
        }
        return y;
    }

    /// <summary>Element-wise power aᵇ.</summary>
    public Tensor Pow(Tensor exponent)
    {
        var y = Binary(BinaryOp.Pow, this, exponent);
        if (GradMode.Needed(this, exponent))
        {
            var (a, b) = (this, exponent);
            // d/da = b·a^(b-1), d/db = aᵇ·ln a
            y.Record("Pow", [a, b], g => [
                a.RequiresGrad ? g.Mul(b).Mul(a.Pow(b.Sub(Scalar(1f, b.Device)))).SumTo(a._shape) : null,
                b.RequiresGrad ? g.Mul(y).Mul(a.Log()).SumTo(b._shape) : null]);
        }
        return y;
    }

    /// <summary>Element-wise maximum; on ties the gradient is split evenly, as in PyTorch.</summary>
    public Tensor Maximum(Tensor other) => MinMax(BinaryOp.Maximum, other, "Maximum");

    /// <summary>Element-wise minimum; on ties the gradient is split evenly, as in PyTorch.</summary>
    public Tensor Minimum(Tensor other) => MinMax(BinaryOp.Minimum, other, "Minimum");

    private Tensor MinMax(BinaryOp op, Tensor other, string name)
    {
        var y = Binary(op, this, other);
        if (GradMode.Needed(this, other))
        {
            var (a, b) = (this, other);
            y.Record(name, [a, b], g =>
            {
                // share of the gradient a gets: 1 where a wins, 0.5 on ties, 0 where b wins
                var aWins = op == BinaryOp.Maximum ? Binary(BinaryOp.Greater, a, b) : Binary(BinaryOp.Less, a, b);
                var share = aWins.Add(Binary(BinaryOp.Equal, a, b).Mul(Scalar(0.5f, a.Device)));
                return [
                    a.RequiresGrad ? g.Mul(share).SumTo(a._shape) : null,
                    b.RequiresGrad ? g.Mul(share.Neg().Add(Scalar(1f, a.Device))).SumTo(b._shape) : null];
            });
        }
        return y;
    }

    /// <summary>1 where this &gt; other, else 0 (no gradient).</summary>
    public Tensor Gt(Tensor other) => Binary(BinaryOp.Greater, this, other);
    /// <summary>1 where this &lt; other, else 0 (no gradient).</summary>
    public Tensor Lt(Tensor other) => Binary(BinaryOp.Less, this, other);
    /// <summary>1 where this == other, else 0 (no gradient).</summary>
    public Tensor Eq(Tensor other) => Binary(BinaryOp.Equal, this, other);
    public Tensor Gt(float value) => Gt(Scalar(value, Device));
    public Tensor Lt(float value) => Lt(Scalar(value, Device));
    public Tensor Eq(float value) => Eq(Scalar(value, Device));

    /// <summary>min(max(x, min), max). The gradient passes where min ≤ x ≤ max, boundaries included, as in PyTorch.</summary>
    public Tensor Clamp(float min, float max)
    {
        RequireFloat("Clamp");
        var y = Binary(BinaryOp.Minimum, Binary(BinaryOp.Maximum, this, Scalar(min, Device)), Scalar(max, Device));
        if (GradMode.Needed(this))
        {
            var x = this;
            y.Record("Clamp", [x], g =>
            {
                var outside = Binary(BinaryOp.Less, x, Scalar(min, x.Device)).Add(Binary(BinaryOp.Greater, x, Scalar(max, x.Device)));
                return [g.Mul(Scalar(1f, x.Device).Sub(outside))];
            });
        }
        return y;
    }

    // ---------------------------------------------------------------- unary

    /// <summary>y = F(x) element-wise through the kernel backend (F's parameter, if it has one, is
    /// <paramref name="alpha"/>), recorded with dy·F'(x) as its backward. Any <see cref="IUnaryFunction"/> works,
    /// including one defined outside the library.</summary>
    public Tensor Unary<F>(float alpha = 0f) where F : struct, IUnaryFunction
    {
        RequireFloat(F.Name);
        var x = Contiguous();
        var y = Empty(_shape.ToArray(), DType.Float32, Device);
        if (Count > 0) KernelsFor(F.Name, x).Unary<F>(alpha, x.Data, y.Data, Count);
        GC.KeepAlive(x);
        if (GradMode.Needed(this))
        {
            y.Record(F.Name, [this], g =>
            {
                var gc = g.Contiguous();
                var dx = Empty(x._shape.ToArray(), DType.Float32, x.Device);
                if (dx.Count > 0) KernelsFor(F.Name + " backward", x, gc).UnaryBackward<F>(alpha, x.Data, y.Data, gc.Data, dx.Data, dx.Count);
                GC.KeepAlive(gc);
                return [dx];
            }, saved: [x.IfCopyOf(this)]);
        }
        return y;
    }

    public Tensor Neg() => Unary<Functions.Neg>();
    public Tensor Exp() => Unary<Functions.Exp>();
    public Tensor Log() => Unary<Functions.Log>();
    public Tensor Sqrt() => Unary<Functions.Sqrt>();
    public Tensor Abs() => Unary<Functions.Abs>();
    public Tensor Square() => Mul(this);
    /// <summary>Element-wise xᵖ for a constant exponent.</summary>
    public Tensor Pow(float exponent) => Unary<Functions.PowScalar>(exponent);

    public Tensor Add(float value) => Unary<Functions.Shift>(value);
    public Tensor Sub(float value) => Unary<Functions.Shift>(-value);
    public Tensor Mul(float value) => Unary<Functions.Scale>(value);
    public Tensor Div(float value) => Div(Scalar(value, Device));

    public static Tensor operator +(Tensor a, Tensor b) => a.Add(b);
    public static Tensor operator -(Tensor a, Tensor b) => a.Sub(b);
    public static Tensor operator *(Tensor a, Tensor b) => a.Mul(b);
    public static Tensor operator /(Tensor a, Tensor b) => a.Div(b);
    public static Tensor operator -(Tensor a) => a.Neg();
    public static Tensor operator +(Tensor a, float b) => a.Add(b);
    public static Tensor operator +(float a, Tensor b) => b.Add(a);
    public static Tensor operator -(Tensor a, float b) => a.Sub(b);
    public static Tensor operator -(float a, Tensor b) => b.Neg().Add(a);
    public static Tensor operator *(Tensor a, float b) => a.Mul(b);
    public static Tensor operator *(float a, Tensor b) => b.Mul(a);
    public static Tensor operator /(Tensor a, float b) => a.Div(b);
    public static Tensor operator /(float a, Tensor b) => Scalar(a, b.Device).Div(b);

    // ---------------------------------------------------------------- in place (no autograd)

    /// <summary>this += other (broadcast). For optimizers and gradient buffers: not recorded, and refused on a
    /// tensor that requires grad unless inside NoGrad().</summary>
    public Tensor AddInPlace(Tensor other, float alpha = 1f)
    {
        CheckMutable();
        AddInPlaceUnchecked(alpha == 1f ? other : other.Mul(alpha));
        return this;
    }

    internal void AddInPlaceUnchecked(Tensor other)
    {
        if (IsContiguous)
        {
            var shape = _shape;
            KernelsFor("AddInPlace", this, other).Binary(BinaryOp.Add, Data, _strides, other.Data, other.BroadcastStrides(shape), Data, shape);
            GC.KeepAlive(other);
        }
        else CopyFromUnchecked(Binary(BinaryOp.Add, this, other), accumulate: false);
    }

    /// <summary>this *= value, in place.</summary>
    public Tensor MulInPlace(float value)
    {
        CheckMutable();
        var x = Contiguous();
        KernelsFor("MulInPlace", x).Unary<Functions.Scale>(value, x.Data, x.Data, Count);
        if (!ReferenceEquals(x, this)) CopyFromUnchecked(x, accumulate: false);
        return this;
    }

    /// <summary>Sets every element to <paramref name="value"/>.</summary>
    public Tensor Fill(float value)
    {
        CheckMutable();
        if (IsContiguous) KernelsFor("Fill", this).Fill(Data, value, Count);
        else CopyFromUnchecked(Scalar(value, Device), accumulate: false);
        return this;
    }

    public Tensor Zero() => Fill(0f);

    /// <summary>Copies <paramref name="source"/> (broadcast to this shape, and moved from its device if it lives on
    /// another) into this tensor's elements.</summary>
    public Tensor CopyFrom(Tensor source)
    {
        CheckMutable();
        CopyFromUnchecked(source.To(Device), accumulate: false);
        return this;
    }

    internal void CopyFromUnchecked(Tensor source, bool accumulate)
    {
        if (source.DType != DType) throw new InvalidOperationException($"CopyFrom: cannot copy {source.DType} into {DType}; convert with To().");
        if (!BroadcastShape(source._shape, _shape, "CopyFrom").AsSpan().SequenceEqual(_shape))
            throw new ArgumentException($"CopyFrom: source shape {source.ShapeString} does not broadcast to {ShapeString}.");
        if (Count > 0) KernelsFor("CopyFrom", this, source).Copy(source.Data, source.BroadcastStrides(_shape), Data, _strides, _shape, accumulate);
        GC.KeepAlive(source);
    }
}
