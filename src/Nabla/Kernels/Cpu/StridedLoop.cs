using System.Runtime.CompilerServices;

namespace Nabla.Kernels.Cpu;

/// <summary>
/// Iterates two strided operands over a shape as a sequence of rows: dimensions of size 1 are dropped and
/// neighbouring dimensions that are contiguous in both operands are merged, so most loops end up as one long
/// vectorisable row (or a few), whatever views the operands are. A value type with its dimensions inline, so a
/// kernel call that iterates allocates nothing.
/// </summary>
internal struct StridedLoop
{
    /// <summary>Dimensions left after merging, the inner one included, that a loop can have.</summary>
    public const int MaxDims = 16;

    [InlineArray(MaxDims)]
    private struct Dims
    {
        private int _element;
    }

    public long Count;
    public int InnerSize, InnerStrideA, InnerStrideB;
    private int _outerDims;
    private Dims _outerShape, _outerA, _outerB;

    public static StridedLoop Coalesce(ReadOnlySpan<int> shape, ReadOnlySpan<int> stridesA, ReadOnlySpan<int> stridesB)
    {
        var loop = new StridedLoop { Count = ShapeMath.Count(shape), InnerSize = 1 };
        if (loop.Count == 0) return loop;
        // Kept dimensions, outermost first: (size, stride a, stride b).
        Span<int> size = stackalloc int[MaxDims], a = stackalloc int[MaxDims], b = stackalloc int[MaxDims];
        int kept = 0;
        for (int d = 0; d < shape.Length; d++)
        {
            if (shape[d] == 1) continue;
            // The previous (outer) dimension folds into this one when it steps exactly over it.
            if (kept > 0 && a[kept - 1] == stridesA[d] * shape[d] && b[kept - 1] == stridesB[d] * shape[d])
            {
                size[kept - 1] *= shape[d];
                a[kept - 1] = stridesA[d];
                b[kept - 1] = stridesB[d];
                continue;
            }
            if (kept == MaxDims)
                throw new NotSupportedException($"An element-wise loop over shape {ShapeMath.Format(shape)} has more than {MaxDims} dimensions that cannot be merged; make the operands contiguous first.");
            (size[kept], a[kept], b[kept]) = (shape[d], stridesA[d], stridesB[d]);
            kept++;
        }
        if (kept == 0) return loop;
        (loop.InnerSize, loop.InnerStrideA, loop.InnerStrideB) = (size[kept - 1], a[kept - 1], b[kept - 1]);
        loop._outerDims = kept - 1;
        for (int d = 0; d < kept - 1; d++) (loop._outerShape[d], loop._outerA[d], loop._outerB[d]) = (size[d], a[d], b[d]);
        return loop;
    }

    /// <summary>An iterator positioned at row <paramref name="row"/> (rows are counted over the outer dimensions).</summary>
    public readonly Iter Iterator(long row) => new(this, row);

    public struct Iter
    {
        private readonly StridedLoop _loop;
        private Dims _index;
        public long OffsetA, OffsetB;

        public Iter(in StridedLoop loop, long row)
        {
            _loop = loop;
            for (int d = loop._outerDims - 1; d >= 0; d--)
            {
                int size = loop._outerShape[d];
                _index[d] = (int)(row % size);
                row /= size;
                OffsetA += (long)_index[d] * loop._outerA[d];
                OffsetB += (long)_index[d] * loop._outerB[d];
            }
        }

        public void Next()
        {
            for (int d = _loop._outerDims - 1; d >= 0; d--)
            {
                OffsetA += _loop._outerA[d];
                OffsetB += _loop._outerB[d];
                if (++_index[d] < _loop._outerShape[d]) return;
                OffsetA -= (long)_loop._outerA[d] * _index[d];
                OffsetB -= (long)_loop._outerB[d] * _index[d];
                _index[d] = 0;
            }
        }
    }
}
