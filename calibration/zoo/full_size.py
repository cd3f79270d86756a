"""Full-size variants of zoo models for GPU campaigns (ImageNet-size CNNs, base-size transformers).

At calibration size most zoo models are launch-bound on a large GPU; these variants reach the compute-
and bandwidth-bound regime. They have no CPU batch sizes, so CPU campaigns skip them. Each keeps the
family of the model it enlarges, so leave-one-family-out evaluation holds the sizes of a family together.
"""

from __future__ import annotations

from functools import partial

from flopcast.calibration.zoo.mobilenet import mobilenet_v2
from flopcast.calibration.zoo.recsys import dlrm
from flopcast.calibration.zoo.registry import ZooModel, register
from flopcast.calibration.zoo.resnet import resnet18, resnet50
from flopcast.calibration.zoo.rnn import lstm_lm
from flopcast.calibration.zoo.transformer_decoder import gpt2_mini, llama_mini
from flopcast.calibration.zoo.transformer_encoder import bert_mini
from flopcast.calibration.zoo.unet import unet
from flopcast.calibration.zoo.vgg import vgg11
from flopcast.calibration.zoo.vit import vit_tiny

IMAGENET = ("float32[B,3,224,224]",)

for _model in (
    ZooModel("resnet18-224", "resnet", resnet18, IMAGENET, (), (32, 128, 256), "ResNet-18 on 224x224 images"),
    ZooModel("resnet50-224", "resnet", resnet50, IMAGENET, (), (16, 64, 128), "ResNet-50 on 224x224 images"),
    ZooModel("mobilenetv2-224", "mobilenet", mobilenet_v2, IMAGENET, (), (32, 128, 256),
             "MobileNetV2 on 224x224 images"),
    ZooModel("vgg11-224", "vgg", partial(vgg11, 1000, 7, 4096), IMAGENET, (), (16, 64),
             "VGG-11 with the ImageNet classifier (132.9 M parameters)"),
    ZooModel("unet-256", "unet", partial(unet, 3, 2, (64, 128, 256, 512)), ("float32[B,3,256,256]",), (),
             (4, 16), "U-Net with 64-512 channels on 256x256 images"),
    ZooModel("vit-b16", "vit", partial(vit_tiny, 224, 16, 768, 12, 12, 4, 1000), IMAGENET, (), (16, 64),
             "ViT-B/16 on 224x224 images (86 M parameters)"),
    ZooModel("gpt2-small", "transformer-decoder",
             partial(gpt2_mini, n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024),
             ("int64[B,512]<50257",), (), (4, 8, 16), "GPT-2 small (124 M) at sequence length 512"),
    ZooModel("llama-300m", "transformer-decoder",
             partial(llama_mini, num_hidden_layers=16, hidden_size=1024, intermediate_size=2816,
                     num_attention_heads=16, num_key_value_heads=8, vocab_size=32000, max_position_embeddings=1024),
             ("int64[B,512]<32000",), (), (2, 4, 8), "Llama-style decoder, 16x1024, GQA, at sequence length 512"),
    ZooModel("bert-base", "transformer-encoder",
             partial(bert_mini, num_hidden_layers=12, hidden_size=768, intermediate_size=3072,
                     num_attention_heads=12, vocab_size=30522, max_position_embeddings=512),
             ("int64[B,256]<30522",), (), (8, 32, 64), "BERT-base masked LM at sequence length 256"),
    ZooModel("lstm-lm-large", "rnn", partial(lstm_lm, 32000, 1024, 2), ("int64[B,128]<32000",), (), (16, 64),
             "2-layer LSTM LM, width 1024, vocabulary 32000"),
    ZooModel("dlrm-large", "recsys", partial(dlrm, 13, 26, 100000, 64, (512, 256, 64), (1024, 512, 256)),
             ("float32[B,13]", "int64[B,26,4]<100000"), (), (256, 2048, 8192),
             "DLRM with 26 tables of 100k x 64 and wide MLPs"),
):
    register(_model)
