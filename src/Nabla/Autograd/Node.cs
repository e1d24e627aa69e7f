namespace Nabla.Autograd;

/// <summary>
/// The record of one op in the graph: its inputs and the function that turns the gradient of its output into
/// gradients of its inputs. The function returns one gradient per input (null where none is needed), each of
/// the input's shape. It must return freshly computed tensors, or the incoming gradient itself (or views of
/// it) — the engine relies on that to recycle gradient buffers as soon as they are consumed.
/// </summary>
public sealed class Node
{
    public string Name { get; }
    internal Tensor?[] Inputs { get; private set; }
    internal Func<Tensor, Tensor?[]>? BackwardFn { get; private set; }
    /// <summary>Tensors the op made for its backward alone and handed to no one (e.g. layer norm's mean and rstd): the
    /// engine releases their memory once the backward has run.</summary>
    internal Tensor?[] Saved { get; private set; }

    internal Node(string name, Tensor?[] inputs, Func<Tensor, Tensor?[]> backward, Tensor?[]? saved = null)
    {
        Name = name;
        Inputs = inputs;
        BackwardFn = backward;
        Saved = saved ?? [];
    }

    /// <summary>Whether input <paramref name="i"/> wants a gradient (so a backward can skip the others).</summary>
    public bool NeedsGrad(int i) => Inputs[i] is { RequiresGrad: true };

    /// <summary>Dotted name of the sub-module that ran the op; recorded only in <see cref="AnomalyMode"/>.</summary>
    internal string? ModulePath { get; set; }

    /// <summary>Drops the saved tensors once backward has run (unless the graph is retained).</summary>
    internal void Free()
    {
        BackwardFn = null;
        Inputs = [];
        Saved = [];
    }

    public override string ToString() => $"<{Name}Backward>";
}

internal static class NodeExtensions
{
    /// <summary>Records <paramref name="output"/> as produced by op <paramref name="name"/> from
    /// <paramref name="inputs"/>. Call only when <see cref="GradMode.Needed(Tensor)"/> said so. <paramref name="saved"/>
    /// lists tensors the op created for its backward alone and gave to no one else (not its output, not an input);
    /// the engine returns their memory to the pool once the backward has run.</summary>
    internal static Tensor Record(this Tensor output, string name, Tensor?[] inputs, Func<Tensor, Tensor?[]> backward, Tensor?[]? saved = null)
    {
        output.SetGradFn(new Node(name, inputs, backward, saved));
        return output;
    }

    /// <summary><paramref name="copy"/> if it is a private copy of <paramref name="original"/> (Contiguous() made one),
    /// else null: for the saved list of <see cref="Record"/>.</summary>
    internal static Tensor? IfCopyOf(this Tensor copy, Tensor original) => ReferenceEquals(copy.Storage, original.Storage) ? null : copy;
}
