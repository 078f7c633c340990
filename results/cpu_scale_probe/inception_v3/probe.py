import sys, json
import rethink_jax; rethink_jax.configure_xla_cpu()
from rethink_jax.experiments import suite
from rethink_jax.training import train
row = dict(data_aug=False, dropout=False, weight_decay=False, random_labels=sys.argv[1] == "random")
c = suite.table2_config("cpu", 0, row)
with c.unlocked():
  c.num_epochs = int(sys.argv[2]); c.learning_rate = float(sys.argv[4])
s = train.train_and_evaluate(c, sys.argv[3])
for l in open(sys.argv[3] + "/metrics.jsonl"):
  r = json.loads(l); print(sys.argv[4], r["epoch"], round(r["train_loss_running"], 3), r["train_accuracy_running"], r["train_accuracy"], r["test_accuracy"], round(r["train_loss"], 3))
