from tasks import compute_square

result = compute_square.delay(4)
print("status:", result.status)
print("result:", result.get(timeout=10))  # 16
