"""The lab: the pieces a researcher brings or tries on their own — a model module of their own
(byo), a declarative layer list (layers) with blocks described in words (blocks, LLM-written and
gated), optimizers with parameter groups, a Grokfast filter and gated custom optimizers
(optimizers, optim_runtime), a quick evaluator (trial) and the pipeline hooks that train them
(pipeline). torch is imported inside functions: importing this package costs nothing."""
