"""Write notebooks/quickstart.ipynb (kept as code so the notebook's source is reviewable), then store it with its
outputs through tools/run_notebooks.py (tests/test_notebooks.py expects the stored copy to hold them)."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell("# ibisc-zoo quickstart\n\nTrain the small CNN on scikit-learn's digits, load the "
                      "shipped pretrained weights, predict and plot. Runs on a CPU in well under a minute."),
    new_code_cell("import lightning.pytorch as pl\nimport matplotlib\n"
                  "import matplotlib.pyplot as plt\nimport torch\n\nimport zoo\n"
                  "from datamodules.digits import DigitsDataModule\nfrom zoo.quickstart import QuickstartClassifier"),
    new_markdown_cell("## Train\nThe same module and data as `zoo fit --config configs/quickstart.yaml`, for a few epochs."),
    new_code_cell("pl.seed_everything(0)\ndm = DigitsDataModule(batch_size=64)\nmodule = QuickstartClassifier(width=16)\n"
                  "trainer = pl.Trainer(max_epochs=5, accelerator='cpu', logger=False, enable_checkpointing=False,\n"
                  "                     enable_progress_bar=False, enable_model_summary=False)\n"
                  "trainer.fit(module, datamodule=dm)\nresult = trainer.test(module, datamodule=dm, verbose=False)[0]\n"
                  "print(f\"test accuracy after 5 epochs: {result['test/acc']:.3f}\")\nassert result['test/acc'] > 0.8"),
    new_markdown_cell("## Load pretrained weights\n`zoo.load` checks the file's sha256 and unpickles it with `weights_only=True`."),
    new_code_cell("print(zoo.list_models(pretrained=True))\nnet = zoo.load('quickstart_cnn')\nnet.pretrained_metadata"),
    new_markdown_cell("## Predict"),
    new_code_cell("x, y = dm.datasets['test'].tensors\nwith torch.no_grad():\n    probs = net(x).softmax(-1)\n"
                  "pred = probs.argmax(-1)\nacc = (pred == y).float().mean().item()\nprint(f'pretrained test accuracy: {acc:.4f}')\n"
                  "assert acc >= 0.95"),
    new_markdown_cell("## Plot\nTest digits with their predicted class and confidence; mistakes in red."),
    new_code_cell("order = torch.argsort(probs.max(-1).values)[:8].tolist() + list(range(8))\n"
                  "fig, axes = plt.subplots(2, 8, figsize=(12, 3.4))\nfor ax, i in zip(axes.flat, order):\n"
                  "    ax.imshow(x[i, 0], cmap='gray_r')\n    ok = pred[i] == y[i]\n"
                  "    ax.set_title(f'{pred[i].item()} ({probs[i].max():.2f})', color='black' if ok else 'red', fontsize=9)\n"
                  "    ax.axis('off')\nfig.suptitle('top row: least confident test digits; bottom row: first test digits')\n"
                  "fig.tight_layout()\nplt.show()"),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
nbformat.write(nb, "notebooks/quickstart.ipynb")

import subprocess  # noqa: E402
import sys  # noqa: E402

subprocess.run([sys.executable, "tools/run_notebooks.py", "notebooks/quickstart.ipynb"], check=True)
