using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

// Views: new shape/strides/offset over the same storage, no copy. Each records its backward, which routes the
// gradient back through the inverse view (or scatters it into zeros of the input's shape).
public sealed unsafe partial class Tensor
{
    private Tensor MakeView(int[] shape, int[] strides, int offset) => new(Storage, shape, strides, offset, DType);

    /// <summary>This tensor seen with another shape, sharing memory (like <c>view</c>). One dimension may be -1.
    /// Throws if the strides do not allow it; <see cref="Reshape"/> copies in that case instead.</summary>
    public Tensor View(params int[] shape)
    {
        var newShape = InferShape(shape);
        var strides = ViewStrides(newShape)
            ?? throw new InvalidOperationException($"View {ShapeMath.Format(newShape)} is not compatible with the strides of this {ShapeString} tensor (it is not contiguous); use Reshape(), which copies.");
        return ReshapeView(newShape, strides);
    }

    /// <summary>This tensor with another shape: a view when the strides allow it, otherwise a copy. One dimension may be -1.</summary>
    public Tensor Reshape(params int[] shape)
    {
        var newShape = InferShape(shape);
        var strides = ViewStrides(newShape);
        return strides != null ? ReshapeView(newShape, strides) : Contiguous().View(newShape);
    }

    private Tensor ReshapeView(int[] newShape, int[] strides)
    {
        var y = MakeView(newShape, strides, Offset);
        if (GradMode.Needed(this))
        {
            var inShape = _shape;
            y.Record("View", [this], g => [g.Reshape(inShape)]);
        }
        return y;
    }

    private int[] InferShape(int[] shape)
    {
        var result = shape.ToArray();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < result.Length; i++)
        {
            if (result[i] == -1)
            {
                if (infer >= 0) throw new ArgumentException($"Only one dimension can be -1 in shape {ShapeMath.Format(shape)}.");
                infer = i;
            }
            else if (result[i] < 0) throw new ArgumentException($"Invalid dimension {result[i]} in shape {ShapeMath.Format(shape)}.");
            else known *= result[i];
        }
        if (infer >= 0)
        {
            if (known == 0 || Count % known != 0)
                throw new ArgumentException($"Shape {ShapeMath.Format(shape)} is invalid for a tensor of {Count} elements (shape {ShapeString}).");
            result[infer] = (int)(Count / known);
        }
        else if (known != Count)
            throw new ArgumentException($"Shape {ShapeMath.Format(shape)} is invalid for a tensor of {Count} elements (shape {ShapeString}).");
        return result;
    }

    /// <summary>Strides that show this tensor's elements, in order, with <paramref name="newShape"/>, or null when
    /// no strides can (PyTorch's rule: each group of merged dimensions must be contiguous within itself).</summary>
    private int[]? ViewStrides(int[] newShape)
    {
        if (IsContiguous || Count == 0) return ShapeMath.ContiguousStrides(newShape);
        var newStrides = new int[newShape.Length];
        int viewD = newShape.Length - 1;
        long chunkBaseStride = _strides.Length > 0 ? _strides[^1] : 1;
        long tensorNumel = 1, viewNumel = 1;
        for (int d = _shape.Length - 1; d >= 0; d--)
        {
            tensorNumel *= _shape[d];
            if (d == 0 || (_shape[d - 1] != 1 && _strides[d - 1] != tensorNumel * chunkBaseStride))
            {
                while (viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] == 1))
                {
                    newStrides[viewD] = (int)(viewNumel * chunkBaseStride);
                    viewNumel *= newShape[viewD];
                    viewD--;
                }
                if (viewNumel != tensorNumel) return null;
                if (d > 0)
                {
                    chunkBaseStride = _strides[d - 1];
                    tensorNumel = 1;
                    viewNumel = 1;
                }
            }
        }
        return viewD == -1 ? newStrides : null;
    }

    /// <summary>Flattens dimensions <paramref name="startDim"/>..<paramref name="endDim"/> into one.</summary>
    public Tensor Flatten(int startDim = 0, int endDim = -1)
    {
        if (Rank == 0) return Reshape(1);
        int s = NormalizeDim(startDim), e = NormalizeDim(endDim);
        if (s > e) throw new ArgumentException($"Flatten: start dimension {startDim} comes after end dimension {endDim}.");
        var shape = new List<int>();
        for (int d = 0; d < s; d++) shape.Add(_shape[d]);
        int merged = 1;
        for (int d = s; d <= e; d++) merged *= _shape[d];
        shape.Add(merged);
        for (int d = e + 1; d < Rank; d++) shape.Add(_shape[d]);
        return Reshape(shape.ToArray());
    }

    /// <summary>The dimensions reordered: result dimension i is this tensor's dimension dims[i].</summary>
    public Tensor Permute(params int[] dims)
    {
        if (dims.Length != Rank)
            throw new ArgumentException($"Permute needs {Rank} dimensions for a tensor of shape {ShapeString}, got {dims.Length}.");
        var shape = new int[Rank];
        var strides = new int[Rank];
        var inverse = new int[Rank];
        var seen = new bool[Rank];
        for (int i = 0; i < Rank; i++)
        {
            int d = NormalizeDim(dims[i]);
            if (seen[d]) throw new ArgumentException($"Permute: dimension {d} appears twice in [{string.Join(", ", dims)}].");
            seen[d] = true;
            shape[i] = _shape[d];
            strides[i] = _strides[d];
            inverse[d] = i;
        }
        var y = MakeView(shape, strides, Offset);
        if (GradMode.Needed(this)) y.Record("Permute", [this], g => [g.Permute(inverse)]);
        return y;
    }

    /// <summary>Swaps two dimensions (a view).</summary>
    public Tensor Transpose(int dim0, int dim1)
    {
        var dims = Enumerable.Range(0, Rank).ToArray();
        int a = NormalizeDim(dim0), b = NormalizeDim(dim1);
        (dims[a], dims[b]) = (dims[b], dims[a]);
        return Permute(dims);
    }

    /// <summary>The transpose of a matrix (rank 2), or of the last two dimensions of a batch of matrices.</summary>
    public Tensor T => Rank < 2 ? this : Transpose(-2, -1);

    /// <summary>Elements [start, start+length) of dimension <paramref name="dim"/> (a view).</summary>
    public Tensor Narrow(int dim, int start, int length) => Slice(dim, start, start + length);

    /// <summary>Elements start, start+step, ... below end of dimension <paramref name="dim"/> (a view).
    /// Negative start/end count from the end, as in Python.</summary>
    public Tensor Slice(int dim, int start, int end, int step = 1)
    {
        int d = NormalizeDim(dim);
        int size = _shape[d];
        if (step <= 0) throw new ArgumentException("Slice step must be positive.");
        if (start < 0) start += size;
        if (end < 0) end += size;
        start = Math.Clamp(start, 0, size);
        end = Math.Clamp(end, start, size);
        var shape = _shape.ToArray();
        var strides = _strides.ToArray();
        shape[d] = (end - start + step - 1) / step;
        strides[d] = _strides[d] * step;
        var y = MakeView(shape, strides, Offset + start * _strides[d]);
        if (GradMode.Needed(this))
        {
            int s0 = start, e0 = end;
            y.Record("Slice", [this], g => [ScatterIntoZeros(g, z => z.Slice(d, s0, e0, step), accumulate: false)]);
        }
        return y;
    }

    /// <summary>Index <paramref name="index"/> of dimension <paramref name="dim"/>, which disappears (a view).</summary>
    public Tensor Select(int dim, int index)
    {
        int d = NormalizeDim(dim);
        if (index < 0) index += _shape[d];
        if ((uint)index >= (uint)_shape[d])
            throw new IndexOutOfRangeException($"Index {index} is out of bounds for dimension {d} with size {_shape[d]}.");
        var shape = _shape.Where((_, i) => i != d).ToArray();
        var strides = _strides.Where((_, i) => i != d).ToArray();
        var y = MakeView(shape, strides, Offset + index * _strides[d]);
        if (GradMode.Needed(this))
        {
            int i0 = index;
            y.Record("Select", [this], g => [ScatterIntoZeros(g, z => z.Select(d, i0), accumulate: false)]);
        }
        return y;
    }

    /// <summary>Splits dimension <paramref name="dim"/> into pieces of <paramref name="size"/> (the last may be smaller).</summary>
    public Tensor[] Split(int size, int dim = 0)
    {
        int d = NormalizeDim(dim);
        if (size <= 0) throw new ArgumentException("Split size must be positive.");
        var parts = new List<Tensor>();
        for (int s = 0; s < _shape[d]; s += size) parts.Add(Narrow(d, s, Math.Min(size, _shape[d] - s)));
        return parts.ToArray();
    }

    /// <summary>Splits dimension <paramref name="dim"/> into <paramref name="chunks"/> nearly equal pieces.</summary>
    public Tensor[] Chunk(int chunks, int dim = 0) => Split((Size(dim) + chunks - 1) / chunks, dim);

    /// <summary>Inserts a dimension of size 1 at <paramref name="dim"/>.</summary>
    public Tensor Unsqueeze(int dim)
    {
        int d = NormalizeDim(dim, Rank + 1);
        var shape = _shape.ToList();
        shape.Insert(d, 1);
        return Reshape(shape.ToArray());
    }

    /// <summary>Removes dimension <paramref name="dim"/> if it has size 1 (or every size-1 dimension when null).</summary>
    public Tensor Squeeze(int? dim = null)
    {
        if (dim is { } dd)
        {
            int d = NormalizeDim(dd);
            return _shape[d] != 1 ? this : Reshape(_shape.Where((_, i) => i != d).ToArray());
        }
        return Reshape(_shape.Where(s => s != 1).ToArray());
    }

    /// <summary>Broadcasts size-1 dimensions (and new leading ones) to <paramref name="shape"/> without copying
    /// (stride 0). -1 keeps a dimension's size.</summary>
    public Tensor Expand(params int[] shape)
    {
        if (shape.Length < Rank)
            throw new ArgumentException($"Expand: target {ShapeMath.Format(shape)} has fewer dimensions than {ShapeString}.");
        var target = shape.ToArray();
        var strides = new int[target.Length];
        int lead = target.Length - Rank;
        for (int i = 0; i < target.Length; i++)
        {
            int src = i - lead;
            if (src < 0)
            {
                if (target[i] < 0) throw new ArgumentException($"Expand: -1 is not allowed for the new leading dimension {i}.");
                strides[i] = 0;
                continue;
            }
            if (target[i] == -1) target[i] = _shape[src];
            if (_shape[src] == target[i]) strides[i] = _strides[src];
            else if (_shape[src] == 1) strides[i] = 0;
            else throw new ArgumentException($"Expand: the size {_shape[src]} of dimension {src} of {ShapeString} must be 1 to expand to {target[i]} (target {ShapeMath.Format(shape)}).");
        }
        if (target.AsSpan().SequenceEqual(_shape)) return this;
        var y = MakeView(target, strides, Offset);
        if (GradMode.Needed(this))
        {
            var inShape = _shape;
            y.Record("Expand", [this], g => [g.SumTo(inShape)]);
        }
        return y;
    }

    /// <summary>Sliding windows: dimension <paramref name="dim"/> becomes the window index ((size_d - size)/step + 1
    /// windows) and a new last dimension of length <paramref name="size"/> holds each window. A view: this is
    /// how convolution, pooling and ViT patches read their patches without copying.</summary>
    public Tensor Unfold(int dim, int size, int step)
    {
        int d = NormalizeDim(dim);
        if (size <= 0 || step <= 0) throw new ArgumentException("Unfold size and step must be positive.");
        if (size > _shape[d])
            throw new ArgumentException($"Unfold: window size {size} is larger than dimension {d} ({_shape[d]}) of {ShapeString}.");
        var shape = _shape.Append(size).ToArray();
        var strides = _strides.Append(_strides[d]).ToArray();
        shape[d] = (_shape[d] - size) / step + 1;
        strides[d] = _strides[d] * step;
        var y = MakeView(shape, strides, Offset);
        if (GradMode.Needed(this))
            y.Record("Unfold", [this], g => [ScatterIntoZeros(g, z => z.Unfold(d, size, step), accumulate: true)]);
        return y;
    }

    /// <summary>Any strided view of this (contiguous) tensor's elements: element [i0, i1, ...] of the result is
    /// element offset + Σ i_k·strides[k] of this tensor in row-major order. Windows may overlap.</summary>
    public Tensor AsStrided(int[] shape, int[] strides, int offset = 0)
    {
        if (!IsContiguous) throw new InvalidOperationException("AsStrided needs a contiguous tensor; call Contiguous() first.");
        if (shape.Length != strides.Length) throw new ArgumentException("AsStrided: shape and strides must have the same length.");
        long last = offset;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] < 0 || strides[i] < 0) throw new ArgumentException("AsStrided: negative sizes and strides are not supported.");
            if (shape[i] == 0) { last = offset; break; }
            last += (long)(shape[i] - 1) * strides[i];
        }
        if (offset < 0 || (ShapeMath.Count(shape) > 0 && last >= Count))
            throw new ArgumentException($"AsStrided: shape {ShapeMath.Format(shape)} with strides {ShapeMath.Format(strides)} and offset {offset} reaches element {last}, beyond the {Count} elements of {ShapeString}.");
        var y = MakeView(shape.ToArray(), strides.ToArray(), Offset + offset);
        if (GradMode.Needed(this))
            y.Record("AsStrided", [this], g => [ScatterIntoZeros(g, z => z.AsStrided(shape, strides, offset), accumulate: true)]);
        return y;
    }

    /// <summary>This tensor if it is contiguous, otherwise a contiguous copy.</summary>
    public Tensor Contiguous() => IsContiguous ? this : Clone();

    /// <summary>Gradient helper: zeros of this tensor's shape with <paramref name="g"/> written (or added, where
    /// windows overlap) through the same view the forward took.</summary>
    private Tensor ScatterIntoZeros(Tensor g, Func<Tensor, Tensor> view, bool accumulate)
    {
        var z = Zeros(_shape, g.Device);
        var target = view(z);
        KernelsFor("The backward of a view", g).Copy(g.Data, g._strides, target.Data, target._strides, target._shape, accumulate);
        GC.KeepAlive(g);
        return z;
    }
}
