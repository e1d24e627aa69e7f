namespace Nabla;

/// <summary>
/// A step's worth of tensor memory, returned to the pool when the step ends rather than whenever the garbage
/// collector gets round to finalizers, so a training step's peak memory does not depend on GC timing:
/// <code>
/// foreach (var (x, y) in loader)
/// {
///     using var step = MemoryScope.Begin();
///     var logits = model.Forward(x);
///     var loss = F.CrossEntropy(logits, y);
///     optimizer.ZeroGrad();
///     loss.Backward();
///     optimizer.Step();
///     correct += CountCorrect(logits, y);   // outputs stay readable until the scope ends
///     total += loss.Item();
/// }
/// </code>
/// <para>
/// Why a scope, and what the engine releases without one. Memory may only go back to the pool when no code can
/// still read it. The autograd engine knows of three kinds of storage nobody else sees, and releases each as soon as
/// backward is done with it: gradients it consumed; working memory an op saved for its backward and handed to no
/// one (layer norm's mean and rstd, attention's log-sum-exp, a contiguous copy of an input: <c>Record(..., saved)</c>);
/// and every tensor a backward function creates other than the gradients it returns. Activations are different:
/// every op output is handed back to its caller, and user code may well still hold one after backward (the logits
/// for accuracy, the loss for logging, a hidden state for a probe). The engine cannot tell which, and .NET has no
/// reference counts to ask, so activations are released at the end of the step, which the user marks with this
/// scope.
/// </para>
/// <para>
/// Every storage created on this thread inside the scope goes back to the pool when it ends, except storage that
/// something longer-lived owns: parameters (leaves that require grad) and module buffers, optimizer state, a
/// parameter's gradient (which belongs to the parameter until <c>ZeroGrad()</c> releases it), and whatever is passed
/// to <see cref="Keep"/>. Memory is per storage: views share their storage, keeping any view keeps all of it, and a
/// view of a released storage is released too. Reading a released tensor throws an error saying why it was
/// released — never stale data. Scopes nest (the inner one ends first); kept storage outlives all of them. With
/// gradient accumulation, give each micro-batch a scope of its own (gradients outlive it), so that k micro-batches
/// never hold k batches' activations at once.
/// </para>
/// </summary>
public sealed class MemoryScope : IDisposable
{
    [ThreadStatic] private static MemoryScope? _innermost;

    private readonly List<Storage> _created = [];
    private MemoryScope? _parent;
    private bool _open;

    private MemoryScope() { }

    /// <summary>Starts a scope on this thread; dispose it (a <c>using</c>) to release what was created inside.</summary>
    public static MemoryScope Begin()
    {
        var scope = new MemoryScope();
        scope.Enter();
        return scope;
    }

    /// <summary>Keeps <paramref name="tensor"/>'s memory (all of its storage) beyond every scope it was created
    /// in; from then on only the garbage collector frees it. Returns the tensor.</summary>
    public static Tensor Keep(Tensor tensor)
    {
        tensor.Storage.OutlivesScopes = true;
        return tensor;
    }

    /// <summary>Hands a tensor made on another thread (a prefetched batch), whose memory nobody else holds, to this
    /// thread's innermost scope, as if it had been made here. Returns the tensor.</summary>
    internal static Tensor Adopt(Tensor tensor)
    {
        if (!tensor.Storage.OutlivesScopes) _innermost?._created.Add(tensor.Storage);
        return tensor;
    }

    /// <summary>Called by every new storage: the innermost open scope on this thread takes note of it.</summary>
    internal static void Track(Storage storage) => _innermost?._created.Add(storage);

    /// <summary>Releases everything created inside the scope that nothing longer-lived owns.</summary>
    public void Dispose()
    {
        if (!_open) return;
        Exit();
        foreach (var s in _created)
            if (!s.OutlivesScopes) s.Release(ReleaseReason.ScopeEnded);
        _created.Clear();
    }

    private void Enter()
    {
        _parent = _innermost;
        _innermost = this;
        _open = true;
    }

    private void Exit()
    {
        if (_innermost != this)
            throw new InvalidOperationException("A MemoryScope was ended while a scope begun after it was still open (or on another thread): end scopes innermost first, on the thread that began them.");
        _innermost = _parent;
        _open = false;
    }

    // ---------------------------------------------------------------- the engine's working scope for one backward function

    /// <summary>A reusable scope for the engine: open it around one backward function with <see cref="EnterWorking"/>.</summary>
    internal static MemoryScope Working() => new();

    internal void EnterWorking() => Enter();

    /// <summary>Ends a working scope: what the backward function created goes back to the pool, except the storage of
    /// the gradients it returned, which passes to the enclosing scope.</summary>
    internal void ExitWorking(Tensor?[]? results)
    {
        Exit();
        foreach (var s in _created)
        {
            if (s.OutlivesScopes) continue;
            // When the function threw (no results), nothing is released: it all passes to the enclosing scope.
            if (results == null || Views(results, s)) _parent?._created.Add(s);
            else s.Release(ReleaseReason.BackwardWorkingMemory);
        }
        _created.Clear();
    }

    private static bool Views(Tensor?[] tensors, Storage storage)
    {
        foreach (var t in tensors)
            if (t != null && ReferenceEquals(t.Storage, storage)) return true;
        return false;
    }
}
