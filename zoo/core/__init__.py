"""What several papers share: the classifier base module, model verbs, optimisers, profiling."""
