using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

/// <summary>
/// An n-dimensional array: a shape, strides and an offset over a <see cref="Nabla.Storage"/>. Several tensors
/// may view one storage (reshape, transpose, slice, expand and unfold make views, not copies). Float32 tensors
/// can take part in autograd: set <see cref="RequiresGrad"/> on a leaf, compute, call <see cref="Backward"/>,
/// read <see cref="Grad"/>. Memory is owned by the engine; there is nothing to dispose.
/// </summary>
public sealed unsafe partial class Tensor
{
    private readonly int[] _shape;
    private readonly int[] _strides;
    private bool _requiresGrad;

    /// <summary>The memory this tensor views (replaced only when <see cref="NN.Module.To"/> moves a parameter).</summary>
    public Storage Storage { get; private set; }
    /// <summary>Position of element [0, 0, ...] in the storage, in elements.</summary>
    public int Offset { get; }
    public DType DType { get; }
    /// <summary>Number of elements.</summary>
    public int Count { get; }
    /// <summary>True when the elements lie in row-major order with no gaps (strides are the contiguous strides).</summary>
    public bool IsContiguous { get; }
    /// <summary>Optional name used in error messages (parameters get theirs from their module).</summary>
    public string? Name { get; set; }

    public ReadOnlySpan<int> Shape => _shape;
    public ReadOnlySpan<int> Strides => _strides;
    public int Rank => _shape.Length;

    internal Tensor(Storage storage, int[] shape, int[] strides, int offset, DType dtype)
    {
        Storage = storage;
        _shape = shape;
        _strides = strides;
        Offset = offset;
        DType = dtype;
        long count = ShapeMath.Count(shape);
        if (count > int.MaxValue) throw new ArgumentException($"A tensor of shape {ShapeMath.Format(shape)} has more than 2^31 elements.");
        Count = (int)count;
        IsContiguous = ComputeContiguous(shape, strides);
    }

    /// <summary>A new uninitialised contiguous tensor on <paramref name="device"/> (default: the CPU).</summary>
    internal static Tensor Empty(int[] shape, DType dtype = DType.Float32, Device? device = null)
    {
        foreach (var d in shape)
            if (d < 0) throw new ArgumentException($"Negative dimension in shape {ShapeMath.Format(shape)}.");
        long count = ShapeMath.Count(shape);
        var storage = new Storage(count * dtype.SizeInBytes(), device ?? Device.Cpu);
        return new Tensor(storage, shape, ShapeMath.ContiguousStrides(shape), 0, dtype);
    }

    /// <summary>Where this tensor's memory lives and its ops run.</summary>
    public Device Device => Storage.Device;

    private static bool ComputeContiguous(int[] shape, int[] strides)
    {
        int expected = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            if (shape[d] == 1) continue;
            if (strides[d] != expected) return false;
            expected *= shape[d];
        }
        return true;
    }

    /// <summary>Size of dimension <paramref name="dim"/> (negative counts from the end).</summary>
    public int Size(int dim) => _shape[NormalizeDim(dim)];

    /// <summary>Address of element [0, ...] as float, on the tensor's <see cref="Device"/>: host code may dereference
    /// it only after <see cref="RequireHost"/>; otherwise it is for the device's kernels. Valid while this tensor is
    /// reachable.</summary>
    internal float* Data
    {
        get
        {
            if (DType != DType.Float32 && DType != DType.Int32)
                throw new NotSupportedException(DType.IsHalfPrecision()
                    ? $"Tensor{(Name is { } n ? $" '{n}'" : "")} of shape {ShapeString} is {DType}, a storage type: convert it with To(DType.Float32) to compute with it."
                    : $"Compute on {DType} tensors is not supported yet.");
            return (float*)Storage.Pointer + Offset;
        }
    }

    /// <summary>Address of element [0, ...] as int32 (index tensors), on the tensor's device like <see cref="Data"/>.</summary>
    internal int* IntData
    {
        get
        {
            if (DType != DType.Int32) throw new InvalidOperationException($"Expected an Int32 (index) tensor, got {DType}.");
            return (int*)Storage.Pointer + Offset;
        }
    }

    internal int NormalizeDim(int dim, int? rank = null)
    {
        int r = rank ?? Rank;
        int lo = -Math.Max(r, 1), hi = Math.Max(r, 1) - 1;
        if (dim < lo || dim > hi)
            throw new ArgumentOutOfRangeException(nameof(dim), $"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim}) for a tensor of shape {ShapeString}.");
        return dim < 0 ? dim + Math.Max(r, 1) : dim;
    }

    public string ShapeString => ShapeMath.Format(_shape);

    // ---------------------------------------------------------------- autograd state

    /// <summary>Whether gradients flow to this tensor. Set it on leaves (parameters, inputs); results of ops
    /// on such tensors require grad automatically.</summary>
    public bool RequiresGrad
    {
        get => _requiresGrad;
        set
        {
            if (!IsLeaf && !value) throw new InvalidOperationException("RequiresGrad can only be cleared on leaf tensors; use Detach() for a non-leaf.");
            if (value && DType != DType.Float32) throw new InvalidOperationException($"Only Float32 tensors can require gradients (this one is {DType}).");
            _requiresGrad = value;
            // A leaf that requires grad is a parameter (or an input being differentiated): it outlives memory scopes.
            if (value) Storage.OutlivesScopes = true;
        }
    }

    private Tensor? _grad;
    private bool _gradFromEngine;

    /// <summary>Gradient accumulated by <see cref="Backward"/> (leaves, and non-leaves that called <see cref="RetainGrad"/>).
    /// A leaf's gradient made by the engine belongs to the leaf: <c>ZeroGrad()</c> returns its memory to the pool.</summary>
    public Tensor? Grad
    {
        get => _grad;
        set
        {
            _grad = value;
            _gradFromEngine = false;
        }
    }

    /// <summary>Takes a gradient buffer the engine made (nobody else sees it) as this leaf's gradient: it outlives
    /// memory scopes, and <see cref="DropGrad"/> releases it.</summary>
    internal void AdoptEngineGrad(Tensor grad)
    {
        grad.Storage.OutlivesScopes = true;
        _grad = grad;
        _gradFromEngine = true;
    }

    /// <summary>What ZeroGrad() does to each parameter: forget the gradient, returning its memory to the pool at once
    /// if the engine made it (so the next step's peak does not depend on when the collector runs).</summary>
    internal void DropGrad()
    {
        if (_gradFromEngine) _grad?.Storage.Release(ReleaseReason.ClearedGradient);
        _grad = null;
        _gradFromEngine = false;
    }

    /// <summary>The op that produced this tensor, if it was recorded for autograd.</summary>
    public Node? GradFn { get; internal set; }

    public bool IsLeaf => GradFn == null;

    internal bool RetainsGrad { get; private set; }

    /// <summary>Keep this non-leaf's gradient in <see cref="Grad"/> after backward.</summary>
    public Tensor RetainGrad()
    {
        if (!IsLeaf) RetainsGrad = true;
        return this;
    }

    private Action<Tensor>? _postAccumulateGradHooks;

    /// <summary>PyTorch's <c>register_post_accumulate_grad_hook</c>: on a leaf, <paramref name="hook"/> runs (with this
    /// tensor) each time a backward pass has finished adding into its <see cref="Grad"/>, i.e. as soon as no later op
    /// of that backward can change it. Data-parallel training starts a gradient all-reduce from here while backward
    /// goes on. Dispose the result to remove the hook.</summary>
    public IDisposable RegisterPostAccumulateGradHook(Action<Tensor> hook)
    {
        if (!IsLeaf) throw new InvalidOperationException("RegisterPostAccumulateGradHook() is for leaf tensors (parameters); this tensor was computed by an op.");
        _postAccumulateGradHooks += hook;
        return new HookHandle(() => _postAccumulateGradHooks -= hook);
    }

    internal void RunPostAccumulateGradHooks() => _postAccumulateGradHooks?.Invoke(this);

    private sealed class HookHandle(Action remove) : IDisposable
    {
        private Action? _remove = remove;
        public void Dispose() => Interlocked.Exchange(ref _remove, null)?.Invoke();
    }

    /// <summary>Sets requires-grad and returns this tensor (fluent, for building leaves).</summary>
    public Tensor RequiresGrad_(bool requiresGrad = true)
    {
        RequiresGrad = requiresGrad;
        return this;
    }

    internal void SetGradFn(Node node)
    {
        GradFn = node;
        _requiresGrad = true;
        if (AnomalyMode.IsEnabled) AnomalyMode.CheckRecorded(this);
    }

    /// <summary>Computes the gradient of this tensor with respect to every leaf that requires grad and adds it
    /// to their <see cref="Grad"/>. For a non-scalar tensor pass the gradient of the final objective with respect
    /// to it.</summary>
    public void Backward(Tensor? gradient = null, bool retainGraph = false) => Engine.Backward(this, gradient, retainGraph);

    /// <summary>A tensor sharing this one's memory, cut from the graph.</summary>
    public Tensor Detach() => new(Storage, _shape, _strides, Offset, DType) { Name = Name };

    // ---------------------------------------------------------------- element access

    /// <summary>Reads or writes one element (of an Int32 tensor: as a float, written back truncated). Host tensors
    /// only: element-by-element access to device memory would be one transfer per element.</summary>
    [System.Runtime.CompilerServices.IndexerName("Element")]
    public float this[params int[] index]
    {
        get
        {
            RequireHost("The indexer");
            return DType == DType.Int32 ? IntData[ElementOffset(index)] : Data[ElementOffset(index)];
        }
        set
        {
            RequireHost("The indexer");
            CheckMutable();
            if (DType == DType.Int32) IntData[ElementOffset(index)] = (int)value;
            else Data[ElementOffset(index)] = value;
        }
    }

    private long ElementOffset(int[] index)
    {
        if (index.Length != Rank)
            throw new ArgumentException($"Expected {Rank} indices for a tensor of shape {ShapeString}, got {index.Length}.");
        long o = 0;
        for (int d = 0; d < Rank; d++)
        {
            int i = index[d] < 0 ? index[d] + _shape[d] : index[d];
            if ((uint)i >= (uint)_shape[d])
                throw new IndexOutOfRangeException($"Index {index[d]} is out of bounds for dimension {d} with size {_shape[d]}.");
            o += (long)i * _strides[d];
        }
        return o;
    }

    /// <summary>The value of a one-element tensor (copied to the host, waiting for the device, if it lives on one).</summary>
    public float Item()
    {
        if (Count != 1) throw new InvalidOperationException($"Item() needs a tensor with one element; this one has shape {ShapeString}.");
        if (Device.IsCpu) return DType == DType.Int32 ? *IntData : *Data;
        float value;
        CopyToHost(&value);
        return DType == DType.Int32 ? *(int*)&value : value;
    }

    /// <summary>Copies the elements, in row-major order, into a new array (from the device, if the tensor lives on one).</summary>
    public float[] ToArray()
    {
        if (DType == DType.Int32) return ToIntArray().Select(i => (float)i).ToArray();
        if (DType.IsHalfPrecision()) return WidenHalfPrecision().ToArray();
        var result = new float[Count];
        fixed (float* p = result) CopyToHost(p);
        return result;
    }

    public int[] ToIntArray()
    {
        if (DType != DType.Int32) return ToArray().Select(f => (int)f).ToArray();
        var result = new int[Count];
        fixed (int* p = result) CopyToHost((float*)p);
        return result;
    }

    /// <summary>Writes the elements in row-major order to host memory at <paramref name="dst"/> (4-byte element types).</summary>
    internal void CopyToHost(float* dst)
    {
        if (Count == 0) return;
        if (Device.Runtime is { } runtime)
        {
            var c = Contiguous();
            runtime.CopyToHost((nint)c.Data, dst, (long)Count * sizeof(float));
            GC.KeepAlive(c);
        }
        else
        {
            Backend.Current.Copy(Data, _strides, dst, ShapeMath.ContiguousStrides(_shape), _shape, accumulate: false);
            GC.KeepAlive(this);
        }
    }

    /// <summary>Overwrites this contiguous tensor's elements with <paramref name="values"/> from host memory (4-byte
    /// element types), wherever the tensor lives.</summary>
    internal void CopyFromHost(ReadOnlySpan<float> values)
    {
        if (!IsContiguous || values.Length != Count) throw new InvalidOperationException($"CopyFromHost needs a contiguous tensor of {values.Length} elements, got {ShapeString}.");
        if (Count == 0) return;
        fixed (float* p = values)
        {
            if (Device.Runtime is { } runtime) runtime.CopyFromHost(p, (nint)Data, (long)Count * sizeof(float));
            else values.CopyTo(new Span<float>(Data, Count));
        }
        GC.KeepAlive(this);
    }

    /// <summary>The elements as a span; only for contiguous float tensors in host memory (call <see cref="Contiguous"/>
    /// first; a device tensor has <see cref="ToArray"/>). The span points into the tensor's memory: use it only while
    /// that memory is the tensor's (not past the end of the <see cref="MemoryScope"/> the tensor was made in).</summary>
    public Span<float> AsSpan()
    {
        RequireHost("AsSpan()");
        if (!IsContiguous) throw new InvalidOperationException("AsSpan() needs a contiguous tensor; call Contiguous() first.");
        if (DType != DType.Float32) throw new InvalidOperationException($"AsSpan() is for Float32 tensors (this one is {DType}).");
        return new Span<float>(Data, Count);
    }

    internal void CheckMutable()
    {
        if (GradMode.IsEnabled && RequiresGrad)
            throw new InvalidOperationException($"In-place change of tensor {Name ?? ShapeString} that requires grad; do it inside a NoGrad() scope (as optimizers do) or on a Detach()ed copy.");
    }
}
