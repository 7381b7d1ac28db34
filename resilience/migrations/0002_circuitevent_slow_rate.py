from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("resilience", "0001_initial")]

    operations = [
        migrations.AddField(model_name="circuitevent", name="slow_rate", field=models.FloatField(null=True)),
    ]
