
$0b5e2a4c-7d1f-4e8a-9c3b-2f6d8e1a4b7cSystemRegisteredsys-42"System(2$5f0c9e2d-3b8a-4c1e-a7d6-9e2b4f8c1a3d:$8d3a1f6e-2c9b-4e7a-b5d8-1f4c7a2e9b6dB2024-01-02T03:04:05.678ZJÊ{"systemName":"syste