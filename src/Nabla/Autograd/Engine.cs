using Nabla.Kernels;

namespace Nabla.Autograd;

/// <summary>
/// Reverse-mode differentiation over the recorded graph: order the ops so each runs after everything that
/// used its output, then walk them backwards, summing gradients where a tensor fed several ops. The engine returns
/// to the pool, as soon as it is done with it, the memory nobody else can see (see <see cref="MemoryScope"/>):
/// gradient buffers it created, once their op has consumed them; what each backward function creates besides the
/// gradients it returns; and the working memory each op saved for its backward alone (<see cref="Node.Saved"/>).
/// </summary>
internal static unsafe class Engine
{
    private struct Pending
    {
        public Tensor Grad;
        public bool Owned; // the engine made this buffer and nobody else can see it
    }

    public static void Backward(Tensor root, Tensor? gradient, bool retainGraph)
    {
        if (!root.RequiresGrad)
            throw new InvalidOperationException("Backward() on a tensor that does not require grad: no input of the computation has RequiresGrad = true (or it ran inside NoGrad()).");
        bool owned = false;
        if (gradient == null)
        {
            if (root.Count != 1)
                throw new InvalidOperationException($"Backward() without a gradient needs a scalar; this tensor has shape {root.ShapeString}. Pass the gradient of the objective with respect to it.");
            gradient = Tensor.OnesLike(root);
            owned = true;
        }
        else if (!gradient.Shape.SequenceEqual(root.Shape))
            throw new ArgumentException($"Backward(): gradient shape {gradient.ShapeString} does not match the tensor's shape {root.ShapeString}.");

        using var noGrad = GradMode.NoGrad();
        var order = TopologicalOrder(root);
        var pending = new Dictionary<Tensor, Pending>(ReferenceEqualityComparer.Instance) { [root] = new Pending { Grad = gradient, Owned = owned } };
        var working = MemoryScope.Working();

        for (int n = order.Count - 1; n >= 0; n--)
        {
            var t = order[n];
            if (!pending.Remove(t, out var entry)) continue;
            var g = entry.Grad;
            if (t.IsLeaf)
            {
                AccumulateLeaf(t, g, entry.Owned);
                continue;
            }
            var node = t.GradFn!;
            var fn = node.BackwardFn ?? throw new InvalidOperationException(
                $"Trying to backward through the graph a second time (at {node}); call Backward(retainGraph: true) the first time if you need to.");
            if (t.RetainsGrad) { t.Grad = entry.Owned ? g : g.Clone(); entry.Owned = false; }
            var inputs = node.Inputs;
            working.EnterWorking();
            Tensor?[]? grads = null;
            try { grads = fn(g); }
            finally { working.ExitWorking(grads); }
            if (grads.Length != inputs.Length)
                throw new InvalidOperationException($"{node} returned {grads.Length} gradients for {inputs.Length} inputs.");
            if (AnomalyMode.IsEnabled) AnomalyMode.CheckBackward(node, grads);
            bool passedThrough = false;
            for (int i = 0; i < inputs.Length; i++)
            {
                var input = inputs[i];
                var gi = grads[i];
                if (input == null || gi == null || !input.RequiresGrad) continue;
                if (!gi.Shape.SequenceEqual(input.Shape))
                    throw new InvalidOperationException($"{node} produced a gradient of shape {gi.ShapeString} for input {i} of shape {input.ShapeString}.");
                bool aliasesIncoming = gi.Storage == g.Storage;
                passedThrough |= aliasesIncoming;
                // A gradient passed through (the incoming one, or a view of it) stays the engine's when the incoming
                // one was and no other input gets it too: released once its next op consumed it, not at the step's end.
                bool fresh = !aliasesIncoming || entry.Owned;
                for (int j = 0; j < grads.Length && fresh; j++)
                    if (j != i && grads[j] != null && grads[j]!.Storage == gi.Storage) fresh = false;
                Add(pending, input, gi, fresh);
            }
            if (!retainGraph)
            {
                ReleaseSaved(node, grads, g);
                node.Free();
            }
            if (entry.Owned && !passedThrough) g.Storage.Release(ReleaseReason.ConsumedGradient);
        }
    }

    private static void Add(Dictionary<Tensor, Pending> pending, Tensor input, Tensor g, bool fresh)
    {
        if (!pending.TryGetValue(input, out var existing))
        {
            pending[input] = new Pending { Grad = g, Owned = fresh };
            return;
        }
        if (existing.Owned && existing.Grad.IsContiguous)
        {
            existing.Grad.AddInPlaceUnchecked(g);
            if (fresh) g.Storage.Release(ReleaseReason.ConsumedGradient);
            return;
        }
        var sum = existing.Grad.Add(g);
        if (fresh) g.Storage.Release(ReleaseReason.ConsumedGradient);
        pending[input] = new Pending { Grad = sum, Owned = true };
    }

    /// <summary>Releases the working memory <paramref name="node"/> saved for its backward, which has now run (unless a
    /// gradient it returned, or the one it received, is a view of it).</summary>
    private static void ReleaseSaved(Node node, Tensor?[] grads, Tensor incoming)
    {
        foreach (var saved in node.Saved)
        {
            if (saved == null || ReferenceEquals(saved.Storage, incoming.Storage)) continue;
            bool returned = false;
            foreach (var gi in grads) returned |= gi != null && ReferenceEquals(gi.Storage, saved.Storage);
            if (!returned) saved.Storage.Release(ReleaseReason.BackwardWorkingMemory);
        }
    }

    private static void AccumulateLeaf(Tensor leaf, Tensor g, bool owned)
    {
        if (leaf.Grad == null) leaf.AdoptEngineGrad(owned && g.IsContiguous ? g : g.Clone());
        else
        {
            leaf.Grad.AddInPlaceUnchecked(g);
            if (owned) g.Storage.Release(ReleaseReason.ConsumedGradient);
        }
        // A leaf is reached once per backward, after every op that used it (its pending contributions were summed
        // first), so its gradient is final for this backward here.
        leaf.RunPostAccumulateGradHooks();
    }

    /// <summary>Tensors reachable from <paramref name="root"/> through recorded ops, inputs before users.</summary>
    private static List<Tensor> TopologicalOrder(Tensor root)
    {
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        // Iterative depth-first search (graphs of unrolled RNNs are deeper than the call stack).
        var stack = new Stack<(Tensor T, int Next)>();
        stack.Push((root, 0));
        visited.Add(root);
        while (stack.Count > 0)
        {
            var (t, next) = stack.Pop();
            var inputs = t.GradFn?.Inputs ?? [];
            if (next < inputs.Length)
            {
                stack.Push((t, next + 1));
                var child = inputs[next];
                if (child != null && child.RequiresGrad && visited.Add(child)) stack.Push((child, 0));
            }
            else order.Add(t);
        }
        return order;
    }
}
