// nabla: train, evaluate and run Nabla models from the command line.
return Nabla.Cli.NablaCli.Run(args);
