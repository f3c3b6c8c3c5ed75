# The artifact model moves down from deployments to the inventory floor. Its table
# (deployments_artifact) stays where it is: only Django's idea of which app owns it changes.

import django.db.models.deletion
from django.db import migrations, models

import nodes.models


class Migration(migrations.Migration):

    dependencies = [
        ('nodes', '0004_audit_more_actions'),
        # The table was created by deployments' migrations: the state taken over here is that one.
        ('deployments', '0004_checkresult_will_be_set_up'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Artifact',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('jw_war', 'jw.war'), ('jwdesigner_war', 'jwdesigner.war'), ('tomcat_archive', 'Tomcat archive'), ('schema_sql', 'Schema SQL')], max_length=20)),
                        ('file', models.FileField(max_length=500, upload_to=nodes.models.artifact_path)),
                        ('original_name', models.CharField(max_length=255)),
                        ('size', models.BigIntegerField(default=0)),
                        ('sha256', models.CharField(max_length=64)),
                        ('uploaded', models.DateTimeField(auto_now_add=True)),
                        ('cluster', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='artifacts', to='nodes.cluster')),
                    ],
                    options={
                        'db_table': 'deployments_artifact',
                        'ordering': ['cluster', 'kind'],
                        'constraints': [models.UniqueConstraint(fields=('cluster', 'kind'), name='one_artifact_per_kind')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
