namespace Nabla.Tests.Ops;

/// <summary>
/// Tests that switch process-wide kernel settings — the backend, the ISA cap, the worker thread count — run after
/// all others and one at a time: a test running beside them would compute with the settings they chose (and tests
/// that expect bit-identical runs would see two different summation orders).
/// </summary>
[CollectionDefinition(nameof(KernelSettingsCollection), DisableParallelization = true)]
public sealed class KernelSettingsCollection;
