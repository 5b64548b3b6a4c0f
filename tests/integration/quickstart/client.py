from tasks import compute_square

r = compute_square.delay(4)
print("status:", r.status)
print("result:", r.get(timeout=10))
